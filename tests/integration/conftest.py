from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
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


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """PostgreSQL alone, for a module that tests one part against it rather than the whole stack."""
    data = tmp_path_factory.mktemp("postgres")
    server = EmbeddedPostgres(data / "data", free_port(), data / "postgres.log", durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
