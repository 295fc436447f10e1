"""The evaluation campaign's rules: step order, the margins, and the certified grades the steps give."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.scoring.application import ScoringApplication
from services.scoring.campaign import Actor, Campaign, LimitExceeded, NotEligible, OutOfOrder, RosterHall
from services.scoring.policy import CampaignRules, load_scoring_policies
from shared.clock import CHINA_TIME

AT = datetime(2026, 12, 31, 16, tzinfo=CHINA_TIME)
RULES = CampaignRules()  # the seeds': 1 fewer than nominated at the province, 80% of nominees at the group
# Two cities of one province, five halls each; the campaign spans the province.
ROSTER = [RosterHall(f"HZ-{n}", "浙江", "杭州") for n in range(1, 6)] + [
    RosterHall(f"NB-{n}", "浙江", "宁波") for n in range(1, 6)
]
HANGZHOU, NINGBO, ZHEJIANG = "group/浙江/杭州", "group/浙江/宁波", "group/浙江"
ASSESSED = {hall.hall_id for hall in ROSTER} - {"NB-5"}  # NB-5 has no inspection this month


def actor(unit: str) -> Actor:
    return Actor("qm-1", unit, "as reviewed", AT)


def opened() -> Campaign:
    return Campaign.open("2026-12", ZHEJIANG, "2026-12", ROSTER, actor(ZHEJIANG))


def certified_by_cities() -> Campaign:
    campaign = opened()
    campaign.certify_city(HANGZHOU, ["HZ-4"], ["HZ-1", "HZ-2", "HZ-3"], ASSESSED, actor(HANGZHOU))
    campaign.certify_city(NINGBO, ["NB-3"], ["NB-1", "NB-2", "NB-4"], ASSESSED, actor(NINGBO))
    return campaign


def reviewed() -> Campaign:
    """Six nominees from the cities; the province certifies five (one fewer) and puts four forward."""
    campaign = certified_by_cities()
    campaign.review_province(ZHEJIANG, ["NB-4"], ["HZ-1", "HZ-2", "NB-1", "NB-2"], RULES, actor(ZHEJIANG))
    return campaign


def test_each_level_waits_for_the_one_below_and_decides_once() -> None:
    campaign = opened()
    campaign.certify_city(HANGZHOU, [], ["HZ-1"], ASSESSED, actor(HANGZHOU))
    with pytest.raises(OutOfOrder, match="宁波 must certify first"):
        campaign.review_province(ZHEJIANG, [], [], RULES, actor(ZHEJIANG))
    with pytest.raises(OutOfOrder, match="must review first"):
        campaign.certify_group([], RULES, actor("group"))
    with pytest.raises(OutOfOrder, match="already"):
        campaign.certify_city(HANGZHOU, [], [], ASSESSED, actor(HANGZHOU))
    with pytest.raises(OutOfOrder, match="self-assessment is over"):
        campaign.assess_self("HZ-2", "excellent", actor("group/浙江/杭州/HZ-2"))
    campaign.assess_self("NB-1", "good", actor("group/浙江/宁波/NB-1"))  # its city has not certified yet
    with pytest.raises(OutOfOrder, match="group must certify"):
        campaign.close([], actor(ZHEJIANG))


def test_the_province_certifies_fewer_than_its_cities_nominated() -> None:
    campaign = certified_by_cities()
    six = ["HZ-1", "HZ-2", "HZ-3", "NB-1", "NB-2", "NB-4"]
    with pytest.raises(LimitExceeded, match="at most 5 of 6, not 6"):
        campaign.review_province(ZHEJIANG, six[:2], six[2:], RULES, actor(ZHEJIANG))
    with pytest.raises(NotEligible, match="HZ-4 is not nominated") as refused:
        campaign.review_province(ZHEJIANG, ["HZ-4"], [], RULES, actor(ZHEJIANG))
    assert (refused.value.field, refused.value.index) == ("good", 0)
    campaign.review_province(ZHEJIANG, six[:1], six[1:5], RULES, actor(ZHEJIANG))
    assert campaign.stage == "awaiting_group"


def test_the_group_certifies_at_most_eighty_percent_of_its_nominees() -> None:
    campaign = certified_by_cities()
    campaign.review_province(ZHEJIANG, [], ["HZ-1", "HZ-2", "HZ-3", "NB-1", "NB-2"], RULES, actor(ZHEJIANG))
    five = ["HZ-1", "HZ-2", "HZ-3", "NB-1", "NB-2"]
    with pytest.raises(LimitExceeded, match="at most 4 of 5, not 5"):
        campaign.certify_group(five, RULES, actor("group"))
    campaign.certify_group(five[:4], RULES, actor("group"))
    assert campaign.stage == "awaiting_close"


def test_six_nominees_allow_four_excellent_and_not_five() -> None:
    nominees = [RosterHall(f"H-{n}", "浙江", "杭州") for n in range(8)]
    campaign = Campaign.open("2026-12", ZHEJIANG, "2026-12", nominees, actor(ZHEJIANG))
    all_halls = [hall.hall_id for hall in nominees]
    campaign.certify_city(HANGZHOU, [], all_halls[:7], set(all_halls), actor(HANGZHOU))
    campaign.review_province(ZHEJIANG, [], all_halls[:6], RULES, actor(ZHEJIANG))
    with pytest.raises(LimitExceeded, match="at most 4 of 6, not 5"):
        campaign.certify_group(all_halls[:5], RULES, actor("group"))
    campaign.certify_group(all_halls[:4], RULES, actor("group"))


def test_a_hall_without_evidence_cannot_be_certified_and_unlisted_halls_are_below() -> None:
    campaign = opened()
    with pytest.raises(NotEligible, match="NB-5 is not assessed") as refused:
        campaign.certify_city(NINGBO, ["NB-5"], [], ASSESSED, actor(NINGBO))
    assert (refused.value.field, refused.value.index) == ("meets", 0)
    with pytest.raises(NotEligible, match="HZ-1 is not a graded hall of group/浙江/宁波"):
        campaign.certify_city(NINGBO, [], ["HZ-1"], ASSESSED, actor(NINGBO))
    with pytest.raises(NotEligible, match="named twice") as twice:
        campaign.certify_city(NINGBO, ["NB-1"], ["NB-1"], ASSESSED, actor(NINGBO))
    assert (twice.value.field, twice.value.index) == ("nominated", 0)

    campaign = reviewed()
    campaign.certify_group(["HZ-1", "NB-2"], RULES, actor("group"))
    grades = {hall.hall_id: campaign.certified_grade(hall.hall_id) for hall in ROSTER}
    assert grades == {
        "HZ-1": "excellent",
        "NB-2": "excellent",
        "HZ-2": "good",  # put forward, not certified excellent
        "NB-1": "good",
        "NB-4": "good",
        "HZ-3": "meets",  # nominated, not certified good: the province's margin
        "HZ-4": "meets",
        "NB-3": "meets",
        "HZ-5": "below",  # left out by its city
        "NB-5": None,  # not assessed: no grade at all
    }


def test_a_closed_campaign_refuses_every_step_and_survives_the_store() -> None:
    application = ScoringApplication({}, load_scoring_policies())
    campaign = reviewed()
    campaign.certify_group(["HZ-1"], RULES, actor("group"))
    campaign.close([{"hall_id": "HZ-1", "certified_grade": "excellent"}], actor(ZHEJIANG))
    application.save(campaign)

    stored: Campaign = application.repository.get(campaign.id)
    assert (stored.stage, stored.closed_at, stored.certified_grade("HZ-1")) == ("closed", AT, "excellent")
    assert [step["step"] for step in stored.steps] == [
        "opened",
        "city_certified",
        "city_certified",
        "province_reviewed",
        "group_certified",
        "closed",
    ]
    assert stored.steps[-1]["actor_unit"] == ZHEJIANG and stored.steps[-1]["reason"] == "as reviewed"
    with pytest.raises(OutOfOrder, match="closed"):
        stored.assess_self("HZ-5", "good", actor(HANGZHOU))
    with pytest.raises(OutOfOrder, match="closed"):
        stored.certify_group([], RULES, actor("group"))
    with pytest.raises(OutOfOrder, match="closed"):
        stored.close([], actor(ZHEJIANG))
