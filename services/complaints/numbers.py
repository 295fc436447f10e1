"""Complaint numbers: the day, a serial handed out from blocks that the database reserves (one round trip
per block), and a random part, e.g. `C20261201-002669-7KQ3M`.

A serial left unused when a process stops is never given: numbers may have gaps. The random part makes a
number impossible to guess from its neighbours; its letters (Crockford's base 32: no I, L, O or U) read
out clearly on the phone.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime

from services.complaints.repositories import BLOCK_SIZE, SerialBlocks
from shared.clock import CHINA_TIME

RANDOM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_LENGTH = 5  # 32**5, about 33 million per serial
NUMBER_PATTERN = r"^C\d{8}-\d{6}(-[0-9A-HJKMNP-TV-Z]{5})?$"  # without the random part: numbers given before it


def complaint_number(now: datetime, serial: int) -> str:
    # One draw for the whole part (32 letters: 5 bits each), not a system call per letter.
    bits = secrets.randbits(5 * RANDOM_LENGTH)
    random_part = "".join(RANDOM_ALPHABET[(bits >> (5 * place)) & 31] for place in range(RANDOM_LENGTH))
    return f"C{now.astimezone(CHINA_TIME):%Y%m%d}-{serial:06}-{random_part}"


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
