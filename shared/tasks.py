"""Background tasks a service cannot work without."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def essential_task(coroutine: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Runs `coroutine` as a task for the block, and cancels it at the end.

    Should it end by itself meanwhile (it raised, or returned), the process exits, so that its
    supervisor starts it afresh: a service whose consumer or scheduler died must not go on serving
    as if nothing happened.
    """

    def exit_unless_cancelled(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            logger.error("%s stopped; exiting to restart", name, exc_info=task.exception())
            logging.shutdown()
            os._exit(1)

    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(exit_unless_cancelled)
    try:
        yield task
    finally:
        task.remove_done_callback(exit_unless_cancelled)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
