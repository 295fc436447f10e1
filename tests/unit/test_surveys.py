"""Survey tokens: what one says reads back, and none can be forged or altered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.complaints.surveys import SURVEY_VALIDITY, InvalidSurveyToken, SurveyTicket, SurveyTokens

RESULT_AT = datetime(2026, 11, 16, 2, 30, 15, 123456, tzinfo=UTC)


def test_a_token_reads_back_as_the_ticket_it_was_issued_for() -> None:
    ticket = SurveyTicket.for_result(uuid.uuid4(), RESULT_AT)
    assert SurveyTokens(b"secret").read(SurveyTokens(b"secret").issue(ticket)) == ticket
    assert ticket.expires_at == (RESULT_AT + SURVEY_VALIDITY).replace(microsecond=0)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # another signature
        lambda token: "A" + token[1:] if token[0] != "A" else "B" + token[1:],  # another body
        lambda token: token.replace(".", ""),
        lambda token: "",
    ],
)
def test_an_altered_token_is_refused(spoil: object) -> None:
    tokens = SurveyTokens(b"secret")
    token = tokens.issue(SurveyTicket.for_result(uuid.uuid4(), RESULT_AT))
    with pytest.raises(InvalidSurveyToken):
        tokens.read(spoil(token))  # type: ignore[operator]


def test_a_token_of_another_key_is_refused() -> None:
    token = SurveyTokens(b"another").issue(SurveyTicket.for_result(uuid.uuid4(), RESULT_AT))
    with pytest.raises(InvalidSurveyToken, match="signature"):
        SurveyTokens(b"secret").read(token)
