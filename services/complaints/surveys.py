"""Survey tokens: the link a calling system sends the customer once a complaint's result is recorded.

A token names the complaint, the result it asks about (the instant that result was recorded) and
when it expires, signed with HMAC-SHA256 under a key derived from the service's secret: nothing is
stored to issue one, and one cannot be forged or altered. It is single-use because the complaint
records the customer's answer to that result; a newer result makes the older token stale.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SURVEY_VALIDITY = timedelta(days=7)
_SIGNATURE_BYTES = 16


class InvalidSurveyToken(ValueError):
    """Not a token this service issued."""


@dataclass(frozen=True)
class SurveyTicket:
    complaint_id: uuid.UUID
    result_at: datetime  # when the result the customer is asked about was recorded
    expires_at: datetime

    @classmethod
    def for_result(cls, complaint_id: uuid.UUID, result_at: datetime) -> SurveyTicket:
        # Whole seconds: the token carries the expiry as an integer, and must read back equal.
        return cls(complaint_id, result_at, datetime.fromtimestamp(int((result_at + SURVEY_VALIDITY).timestamp()), UTC))


class SurveyTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.digest(secret, b"complaint survey tokens", hashlib.sha256)  # not the JWT key itself

    def issue(self, ticket: SurveyTicket) -> str:
        body = f"{ticket.complaint_id.hex}|{ticket.result_at.isoformat()}|{int(ticket.expires_at.timestamp())}"
        return f"{_encode(body.encode())}.{_encode(self._sign(body.encode()))}"

    def read(self, token: str) -> SurveyTicket:
        try:
            encoded_body, encoded_signature = token.split(".")
            body = _decode(encoded_body)
            if not hmac.compare_digest(_decode(encoded_signature), self._sign(body)):
                raise InvalidSurveyToken("the token's signature does not match")
            complaint_id, result_at, expires_at = body.decode().split("|")
            return SurveyTicket(
                uuid.UUID(hex=complaint_id),
                datetime.fromisoformat(result_at),
                datetime.fromtimestamp(int(expires_at), UTC),
            )
        except (ValueError, UnicodeDecodeError) as bad:
            raise InvalidSurveyToken(str(bad)) from None

    def _sign(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, hashlib.sha256)[:_SIGNATURE_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
