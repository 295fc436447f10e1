"""Logs as JSON lines: time, service, level, logger, message, and the trace and span ids of the span current when
the line was logged, so that a line leads to its trace. Every service's lines, uvicorn's included.

Messages never carry personal data: the code logs ids, counts and outcomes, never a name, phone or address.
"""

from __future__ import annotations

import logging
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

FIELDS = ("asctime", "levelname", "name", "message")
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class TraceIds(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, as OpenTelemetry and W3C write them) when a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return True


def json_handler(service: str) -> logging.StreamHandler[TextIO]:
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(FIELDS, rename_fields=RENAMED, static_fields={"service": service}, json_ensure_ascii=False)
    )
    handler.addFilter(TraceIds())
    return handler


def setup_logging(service: str, level: str) -> None:
    """The root logger writes JSON lines to stderr; uvicorn's loggers, which it set up itself, write through it."""
    logging.basicConfig(level=level, handlers=[json_handler(service)], force=True)
    logging.captureWarnings(True)  # a library's warning is a line like any other
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if not uvicorn_logger.handlers and not uvicorn_logger.propagate:
            continue  # turned off (`--no-access-log`): uvicorn logs access lines whenever the logger has a handler
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
