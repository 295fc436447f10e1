"""The channels that reach a customer, each behind one interface: `Channel.send(OutboundMessage)`.

A channel either delivers the message or raises `DeliveryFailed` with a reason that names no personal
data (the reason goes on the complaint's timeline). Email goes to an SMTP server; SMS and WeChat template
messages go to the operator's messaging gateway over HTTP, one JSON document per message:

    POST {gateway_url}  Authorization: Bearer {token}  Idempotency-Key: {key}
    {"channel": "sms", "to": "13812345678", "text": "..."}
    {"channel": "wechat", "to": "<openid>", "template_id": "...", "fields": {"first": "...", ...}}

Any 2xx answer is a delivery; anything else, or no answer within the timeout, is a failure to retry.
The key is the same on every attempt of one notification, so a gateway that keeps keys sends it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import aiosmtplib
import httpx

from services.complaints.notifications import ChannelName, TemplateVersion, render

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The channel did not take the message; the text is the reason, free of personal data."""


@dataclass(frozen=True)
class OutboundMessage:
    channel: ChannelName
    address: str  # the phone, email address or WeChat openid: never logged
    template: TemplateVersion
    values: dict[str, str] = field(repr=False)  # the template's placeholders
    idempotency_key: str  # the same on every attempt

    def __repr__(self) -> str:  # the address and values stay out of logs and tracebacks
        return f"OutboundMessage({self.channel}, key={self.idempotency_key})"


class Channel(Protocol):
    async def send(self, message: OutboundMessage) -> None:
        """Delivers the message, or raises `DeliveryFailed`."""
        ...


class EmailChannel:
    def __init__(
        self, host: str, port: int, sender: str, username: str | None, password: str | None, starttls: bool
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls

    async def send(self, message: OutboundMessage) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.address
        email["Subject"] = render(message.template.email_subject, message.values)
        # Stable per notification: a receiving system can drop a copy that a retry sent again.
        email["Message-ID"] = make_msgid(idstring=message.idempotency_key, domain="notifications.complaints")
        email.set_content(render(message.template.email_body, message.values))
        try:
            await aiosmtplib.send(
                email,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=10,
            )
        except aiosmtplib.SMTPResponseException as refused:
            raise DeliveryFailed(f"the SMTP server refused it: {refused.code}") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"no SMTP delivery: {type(error).__name__}") from None


class GatewayChannel:
    """SMS or WeChat through the messaging gateway."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token

    async def send(self, message: OutboundMessage) -> None:
        if message.channel == "sms":
            document: dict[str, object] = {"text": render(message.template.sms, message.values)}
        else:
            wechat = message.template.wechat
            fields = {name: render(text, message.values) for name, text in wechat.fields.items()}
            document = {"template_id": wechat.template_id, "fields": fields}
        try:
            answer = await self.http.post(
                self.url,
                json={"channel": message.channel, "to": message.address, **document},
                headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": message.idempotency_key},
                timeout=10,
            )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"the gateway did not answer: {type(error).__name__}") from None
        if not answer.is_success:
            raise DeliveryFailed(f"the gateway answered {answer.status_code}")
