"""Complaint serials, handed out from blocks that the database reserves: one round trip per block.

A serial left unused when a process stops is never given: numbers may have gaps.
"""

from __future__ import annotations

import asyncio

from services.complaints.repositories import BLOCK_SIZE, SerialBlocks


class Serials:
    """Requests take serials from the block this process holds."""

    def __init__(self, blocks: SerialBlocks) -> None:
        self.blocks = blocks
        self._lock = asyncio.Lock()
        self._next = self._end = 0

    async def take(self) -> int:
        async with self._lock:
            if self._next == self._end:
                self._next = await self.blocks.reserve()
                self._end = self._next + BLOCK_SIZE
            serial = self._next
            self._next += 1
            return serial
