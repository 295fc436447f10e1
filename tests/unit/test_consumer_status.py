"""What `/readyz` and escalation's scheduler read about a consumer that joins in the background."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from faust.exceptions import ConsumerNotStarted

from shared.streaming import ConsumerStatus


def app(assignment: Any, **state: bool) -> Any:
    """A faust app's state as `ConsumerStatus` reads it."""
    flags = {"started": True, "crashed": False, "should_stop": False, "rebalancing": False} | state
    return SimpleNamespace(consumer=SimpleNamespace(assignment=assignment), **flags)


def status_of(streams: Any) -> ConsumerStatus:
    status = ConsumerStatus()
    status.streams = cast(Any, streams)
    return status


def not_started() -> set[str]:
    raise ConsumerNotStarted("Consumer thread not yet started")


def test_a_consumer_is_live_once_started_with_partitions_assigned() -> None:
    assert status_of(app(lambda: {"complaints.events.v1-0"})).live


def test_a_started_app_whose_consumer_thread_is_still_starting_is_not_live_rather_than_failing() -> None:
    assert not status_of(app(not_started)).live


def test_no_app_no_partitions_a_rebalance_or_a_crash_is_not_live() -> None:
    assert not ConsumerStatus().live
    assert not status_of(app(set)).live
    assert not status_of(app(lambda: {"p"}, rebalancing=True)).live
    assert not status_of(app(lambda: {"p"}, crashed=True)).live
