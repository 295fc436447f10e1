"""A hall's life: changes effective from instants recorded in any order, and its closure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.complaints.domain import Hall, HallAttributes, HallChange, Step, StepRefused


def day(number: int) -> datetime:
    return datetime(2026, 12, number, tzinfo=UTC)


def hall() -> Hall:
    return Hall(
        hall_code="GD-SZ-001", name="福田营业厅", province="广东", city="深圳", level=1, ownership="self_operated"
    )


def step() -> Step:
    return Step(actor="quality-1", reason="refit", at=day(1))


def test_changes_apply_in_order_of_effect_whatever_the_order_they_were_recorded_in() -> None:
    subject = hall()
    subject.change(HallChange(day(20), name=None, level=3, ownership=None, closed=None), step())
    subject.change(HallChange(day(10), name="福田中心厅", level=None, ownership="partner", closed=None), step())
    subject.change(HallChange(day(25), name=None, level=None, ownership=None, closed=True), step())

    assert subject.attributes_at(day(9)) == HallAttributes("福田营业厅", 1, "self_operated", closed=False)
    assert subject.attributes_at(day(15)) == HallAttributes("福田中心厅", 1, "partner", closed=False)
    assert subject.attributes_at(day(21)) == HallAttributes("福田中心厅", 3, "partner", closed=False)
    assert subject.closed_from(day(24)) is None and subject.closed_from(day(26)) == day(25)

    rebuilt = None
    for domain_event in subject.collect_events():
        rebuilt = domain_event.mutate(rebuilt)
    assert isinstance(rebuilt, Hall) and rebuilt.attributes_at(day(26)) == subject.attributes_at(day(26))


def test_a_change_that_changes_nothing_is_refused() -> None:
    subject = hall()
    with pytest.raises(StepRefused, match="nothing to change"):
        subject.change(HallChange(day(5), name="福田营业厅", level=1, ownership=None, closed=False), step())
