"""The one rule for what a request may carry: finite numbers, instants in 2000–2100, text without control characters."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError

from services.complaints.checklist import UnknownChecklist, load_checklist
from services.scoring.policy import SCORING_POLICY_DIR, ScoringPolicy, load_scoring_policies
from shared.errors import validation_error_body
from shared.validation import RequestModel


class Sample(RequestModel):
    text: str = "ok"
    notes: list[str] = Field(default_factory=list)
    labels: dict[str, float] = Field(default_factory=dict)
    rating: float = 0.5
    at: datetime | None = None


def refusal(**fields: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as refused:
        Sample.model_validate(fields)
    return [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"])
def test_control_characters_and_lone_surrogates_are_refused_wherever_the_text_is(character: str) -> None:
    assert refusal(text=f"a{character}b") == [("text",)]
    assert refusal(notes=["fine", f"a{character}"]) == [("notes",)]
    assert refusal(labels={f"k{character}": 1.0}) == [("labels",)]


@pytest.mark.parametrize(
    "text", ["福田营业厅", "😀👨\u200d👩\u200d👧", "line one\nline two\n\tindented", "Windows\r\nline", "\u2028 \ufeff"]
)
def test_unusual_text_tabs_and_line_breaks_are_kept_as_sent(text: str) -> None:
    assert Sample.model_validate({"text": text, "notes": [text]}).text == text


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_in_fields_and_inside_mappings(number: float) -> None:
    assert refusal(rating=number) == [("rating",)]
    assert refusal(labels={"a": number}) == [("labels", "a")]


@pytest.mark.parametrize(
    ("instant", "accepted"),
    [
        ("2000-01-01T00:00:00+14:00", True),
        ("2100-12-31T23:59:59-14:00", True),
        ("1999-12-31T23:59:59+00:00", False),
        ("2101-01-01T00:00:00+00:00", False),
        ("9999-12-31T23:59:59-14:00", False),
        ("0001-01-01T00:00:00+14:00", False),
    ],
)
def test_instants_lie_in_the_years_2000_to_2100_as_written(instant: str, accepted: bool) -> None:
    if accepted:
        assert Sample.model_validate({"at": instant}).at == datetime.fromisoformat(instant)
    else:
        assert refusal(at=instant) == [("at",)]


def test_a_422_does_not_echo_the_input_so_a_nan_in_it_can_be_written_as_json() -> None:
    with pytest.raises(ValidationError) as refused:
        Sample.model_validate({"rating": float("nan"), "text": float("inf")})
    error = RequestValidationError(refused.value.errors())

    body = validation_error_body(error)

    assert json.loads(json.dumps(body, allow_nan=False)) == {
        "detail": [
            {"loc": ["text"], "msg": "Input should be a valid string", "type": "string_type"},
            {"loc": ["rating"], "msg": "Input should be a finite number", "type": "finite_number"},
        ]
    }


def draft(**changes: Any) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads((SCORING_POLICY_DIR / "2026-12.json").read_text())
    return {**policy, "version": "draft", **changes}


def test_every_policy_file_meets_the_bounds() -> None:
    assert set(load_scoring_policies()) == {path.stem for path in Path(SCORING_POLICY_DIR).glob("*.json")}


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"weights": {**draft()["weights"], "innovation": 1e308}}, ("weights", "innovation")),
        ({"weights": {**draft()["weights"], "innovation": float("nan")}}, ("weights", "innovation")),
        ({"weights": {**draft()["weights"], "innovation": -1}}, ("weights", "innovation")),
        (
            {"negative_impact": {"regulator_appeal_upheld": float("inf")}},
            ("negative_impact", "regulator_appeal_upheld"),
        ),
        (
            {"satisfaction_values": {**draft()["satisfaction_values"], "satisfied": 2}},
            ("satisfaction_values", "satisfied"),
        ),
        ({"finding_deduction_per_point": 1e308}, ("finding_deduction_per_point",)),
        ({"overdue_multiplier": 1e308}, ("overdue_multiplier",)),
        ({"bonus_cap": float("nan")}, ("bonus_cap",)),
        ({"final_cap": 0}, ("final_cap",)),
        ({"grade_thresholds": {"excellent": 1e308, "good": 90, "meets": 80}}, ("grade_thresholds", "excellent")),
        ({"effective_from": "9999-12-31T23:59:59-14:00"}, ("effective_from",)),
    ],
)
def test_a_draft_policy_out_of_bounds_is_refused_naming_the_entry(
    changes: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as refused:
        ScoringPolicy.model_validate(draft(**changes))

    assert location in [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize("version", ["../checklists/2026-01", "2026-01/../2026-01", "x" * 300, "/etc/passwd"])
def test_a_checklist_version_that_is_not_a_known_one_never_names_a_file(version: str) -> None:
    with pytest.raises(UnknownChecklist, match="known: 2026-01"):
        load_checklist(version)


def test_known_and_default_checklist_versions_load() -> None:
    assert load_checklist("2026-01").version == load_checklist().version == "2026-01"
