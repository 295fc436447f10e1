"""Unit names are written one way: a look-alike (zero-width space, full-width letters) is not another unit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.complaints.schemas import HallCreate
from shared.organisation import OrgUnit, unit_name

HALL = {"hall_id": "GD-SZ-001", "name": "福田营业厅", "province": "广东", "city": "深圳", "level": 1}


@pytest.mark.parametrize("look_alike", ["广东\u200b", "\u200d广东", "广\u202e东", "广东\x07", "广\ufeff东"])
def test_invisible_and_control_characters_are_refused_in_names_and_paths(look_alike: str) -> None:
    with pytest.raises(ValueError, match="invisible or control"):
        unit_name(look_alike)
    with pytest.raises(ValidationError):
        HallCreate.model_validate({**HALL, "ownership": "self_operated", "province": look_alike})
    with pytest.raises(ValueError):
        OrgUnit.parse(f"group/{look_alike}/深圳")


def test_full_width_and_padded_names_are_kept_in_their_plain_form() -> None:
    hall = HallCreate.model_validate({**HALL, "ownership": "self_operated", "city": " ＳＺ深圳 "})
    assert hall.city == "SZ深圳"
    with pytest.raises(ValueError, match="not written as a unit name is"):
        OrgUnit(("广东", "ＳＺ深圳"))
    assert OrgUnit.parse("group/广东/SZ深圳").path == ("广东", "SZ深圳")


@pytest.mark.parametrize("empty", ["", "   ", "a/b"])
def test_empty_names_and_slashes_are_refused(empty: str) -> None:
    with pytest.raises(ValueError):
        unit_name(empty)
