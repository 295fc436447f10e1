"""What every service's event-sourced application shares."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresRecorder

# eventsourcing retries each read and write 10 times, each first waiting this long for a pooled
# connection. Its default, 30 s, held a request for minutes once the database went down and the
# pool had dropped its connections; with 0.3 s the caller has its 503 within 5 s. Under load,
# requests beyond the pool's connections also get a 503 after those 5 s: they are shed, not queued.
CONNECTION_WAIT_SECONDS = 0.3


class ServiceApplication(Application[uuid.UUID]):
    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        if isinstance(self.recorder, PostgresRecorder):  # unit tests run in memory
            self.recorder.datastore.pool.timeout = CONNECTION_WAIT_SECONDS
