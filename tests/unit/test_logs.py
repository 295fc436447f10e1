"""Log lines are JSON with the service, the level and, inside a span, its trace and span ids."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import json_handler, setup_logging


def logged(emit: Any) -> list[dict[str, Any]]:
    handler = json_handler("complaints")
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("tests")
    ids: dict[str, str] = {}

    def emit(logger: logging.Logger) -> None:
        with tracer.start_as_current_span("work") as span:
            ids.update(
                trace_id=f"{span.get_span_context().trace_id:032x}", span_id=f"{span.get_span_context().span_id:016x}"
            )
            logger.warning("relay %s: publishing failed; retrying", "complaints-events")
        logger.info("erased the customer data of %d complaints", 3)

    inside, outside = logged(emit)

    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": "tests.logs",
        "message": "relay complaints-events: publishing failed; retrying",
        "service": "complaints",
        **ids,
    }
    assert "trace_id" not in outside and outside["level"] == "INFO" and outside["service"] == "complaints"


def test_text_stays_readable_and_a_traceback_stays_in_its_line() -> None:
    def emit(logger: logging.Logger) -> None:
        try:
            raise ValueError("营业厅 GD-SZ-001 unknown")
        except ValueError:
            logger.exception("hall lookup failed")

    (line,) = logged(emit)

    assert line["message"] == "hall lookup failed"
    assert "营业厅 GD-SZ-001 unknown" in line["exc_info"]


@pytest.mark.parametrize("access_log", [True, False])
def test_uvicorns_access_lines_stay_as_its_command_line_says(access_log: bool) -> None:
    """`--no-access-log` (the Deployments', the local stack's) must not be undone by routing uvicorn's loggers
    into the JSON handler: uvicorn writes access lines whenever its access logger has a handler."""
    access = logging.getLogger("uvicorn.access")
    saved = access.handlers[:], access.propagate, logging.getLogger().handlers[:]
    try:
        uvicorn.Config("tests.unit.test_logs:logged", access_log=access_log)  # configures uvicorn's loggers
        setup_logging("complaints", "INFO")
        assert access.hasHandlers() is access_log
    finally:
        access.handlers, access.propagate = saved[0], saved[1]
        logging.basicConfig(handlers=saved[2], force=True)
