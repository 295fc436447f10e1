"""A huge request body is refused before it is read: an unauthenticated 300 MB upload gets 413, and the
service's memory barely moves (shared/body_limit.py, on the running complaints service)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.harness import StackClient

BODY_BYTES = 300 * 2**20
CHUNK = b"{" + b" " * (2**20 - 1)


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def upload(url: str, headers: dict[str, str]) -> None:
    """Sends a 300 MB POST while reading the answer. The service closes the connection once it has answered,
    and the unread bytes make that a reset, which may reach the client before the answer does: so the
    answer is read from the service's metrics, not from here."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())

    framed = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if "Transfer-Encoding" in headers else CHUNK

    async def send_body() -> None:
        with contextlib.suppress(ConnectionError):  # the service answers and closes before taking it all
            for _ in range(BODY_BYTES // len(CHUNK)):
                writer.write(framed)
                await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), timeout=30)  # until the service closes the connection
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()


async def refusals(client: StackClient) -> Counter[str]:
    """How many POSTs the complaints service refused before routing them, by status."""
    metrics = (await client.http.get(f"{client.complaints_url}/metrics")).text
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        if line.startswith("http_server_requests_total{") and 'method="POST"' in line and 'route="unmatched"' in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] += int(float(line.rsplit(" ", 1)[1]))
    return counts


async def test_an_unauthenticated_300_mb_body_gets_413_and_the_service_keeps_its_memory(client: StackClient) -> None:
    service = client.stack.services["complaints"]
    assert service.pid is not None
    url = f"{client.complaints_url}/api/v1/complaints"
    before, refused_before = resident_mib(service.pid), await refusals(client)

    await upload(url, {"Content-Length": str(BODY_BYTES)})  # declared: refused unread
    await upload(url, {"Transfer-Encoding": "chunked"})  # no length and no credentials: refused unread
    await upload(url, {"Transfer-Encoding": "chunked", "Authorization": client.http.headers["Authorization"]})

    refused = await refusals(client)
    assert (refused["413"] - refused_before["413"], refused["401"] - refused_before["401"]) == (2, 1)
    assert resident_mib(service.pid) - before < 50
    assert (await client.http.get(f"{client.complaints_url}/healthz")).status_code == 200
