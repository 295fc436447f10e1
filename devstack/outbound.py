"""The local stand-ins for what reaches customers: an SMTP server, and a recording messaging gateway.

The SMTP server is a real one (aiosmtpd); it keeps every message it receives in a Maildir. The gateway
stands in for the operator's SMS platform and WeChat template messages: it checks the bearer token,
records each message and answers 202, or 503 while told to fail. Both are read over HTTP:
- `GET /messages`: what the gateway recorded; `GET /mail`: what the SMTP server received;
- `PUT /failing` with `{"failing": true}`: the gateway refuses every message until told otherwise.

`python -m devstack.outbound --http-port P --smtp-port Q --mail-dir D --token T`
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import mailbox
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from fastapi import FastAPI, Header, HTTPException, Request, Response
from pydantic import BaseModel

from devstack.process import ManagedProcess

GATEWAY_TOKEN = "local-gateway-token"  # noqa: S105 - the local stand-in's, known to the local stack only


class Failing(BaseModel):
    failing: bool


def create_app(mail_dir: Path, smtp_port: int, token: str) -> FastAPI:
    recorded: list[dict[str, Any]] = []
    state = {"failing": False}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        smtp = Controller(Mailbox(mail_dir), hostname="127.0.0.1", port=smtp_port)
        smtp.start()
        try:
            yield
        finally:
            smtp.stop()

    app = FastAPI(title="outbound stand-ins", lifespan=lifespan)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/messages", status_code=202)
    async def take(request: Request, authorization: str = Header(""), idempotency_key: str = Header("")) -> None:
        if authorization != f"Bearer {token}":
            raise HTTPException(401, "wrong gateway token")
        if state["failing"]:
            raise HTTPException(503, "the gateway is told to fail")
        recorded.append({**await request.json(), "idempotency_key": idempotency_key})

    @app.get("/messages")
    def messages() -> list[dict[str, Any]]:
        return recorded

    @app.put("/failing", status_code=204)
    def fail(body: Failing) -> Response:
        state["failing"] = body.failing
        return Response(status_code=204)

    @app.get("/mail")
    def mail() -> list[dict[str, str]]:
        box = mailbox.Maildir(mail_dir, create=False)
        raw = [box.get_bytes(key) for key in box.iterkeys()]
        return [_described(email.message_from_bytes(message, policy=email.policy.default)) for message in raw]

    return app


def _described(message: Message) -> dict[str, str]:
    """Headers decoded (a Chinese subject travels RFC 2047-encoded), and the text body."""
    body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
    return {
        "to": str(message["To"]),
        "subject": str(message["Subject"]),
        "message_id": str(message["Message-ID"]),
        "body": "" if body is None else str(body.get_content()),
    }


class OutboundStandIns(ManagedProcess):
    def __init__(self, http_port: int, smtp_port: int, mail_dir: Path, log_path: Path | None) -> None:
        super().__init__("outbound", log_path)
        self.http_port, self.smtp_port, self.mail_dir = http_port, smtp_port, mail_dir

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30) -> None:
        self.mail_dir.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(self.mail_dir, create=True)
        self._spawn(
            [
                *(sys.executable, "-m", "devstack.outbound", "--http-port", str(self.http_port)),
                *("--smtp-port", str(self.smtp_port), "--mail-dir", str(self.mail_dir), "--token", GATEWAY_TOKEN),
            ]
        )
        self.wait_until_answering(f"{self.url}/healthz", timeout)
        self.wanted_up = True

    def service_env(self) -> dict[str, str]:
        """The complaints service's settings that send through these stand-ins."""
        return {
            "NOTIFY_SMTP_HOST": "127.0.0.1",
            "NOTIFY_SMTP_PORT": str(self.smtp_port),
            "NOTIFY_GATEWAY_URL": f"{self.url}/messages",
            "NOTIFY_GATEWAY_TOKEN": GATEWAY_TOKEN,
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.outbound")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--mail-dir", type=Path, required=True)
    parser.add_argument("--token", required=True)
    arguments = parser.parse_args()
    app = create_app(arguments.mail_dir, arguments.smtp_port, arguments.token)
    uvicorn.run(app, host="127.0.0.1", port=arguments.http_port, log_level="warning")


if __name__ == "__main__":
    main()
