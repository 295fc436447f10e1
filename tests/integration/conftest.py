from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.stack import Stack, StackConfig
from tests.integration.harness import StackClient, write_api_keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole stack of its own per test module, on free ports: `make run` may be up beside it."""
    config = StackConfig.for_tests(tmp_path_factory.mktemp("stack"))
    config.extra_env["TRACES_EXPORTER"] = "console"  # spans into the log files, where tests can read them
    config.extra_env["API_KEYS_FILE"] = str(write_api_keys(config.data_dir / "api-keys.json"))
    config.extra_env["CLOCK_OFFSET_FILE"] = str(config.data_dir / "clock-offset")  # absent: the system time
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[StackClient]:
    async with StackClient.connect(stack) as client:
        yield client
