"""faust wiring that needs no broker to check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.streaming import create_faust_app


async def test_the_consumer_faust_starts_waits_for_messages_only_as_long_as_configured(tmp_path: Path) -> None:
    streams = create_faust_app("probe", "127.0.0.1:9", tmp_path, fetch_max_wait_ms=42)

    thread: Any = streams.consumer._thread  # type: ignore[attr-defined] # faust's consumer thread
    consumer = thread._create_worker_consumer(streams.transport)  # the consumer faust would start

    assert consumer._fetch_max_wait_ms == 42
    await consumer.stop()  # never started: this only releases its client
