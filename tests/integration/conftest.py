from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.stack import Stack
from tests.integration.harness import StackClient, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One per test module; spans go into the log files, where tests can read them."""
    yield from running_stack(tmp_path_factory, {"TRACES_EXPORTER": "console"})


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[StackClient]:
    async with StackClient.connect(stack) as client:
        yield client
