"""What-ifs are bounded: quality managers only, one at a time per replica (429), and cut off after
`WHAT_IF_SECONDS` (503), so no caller can tie up scoring with replays (services/scoring/api.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.scoring import api
from services.scoring.policy import load_scoring_policies
from shared.auth import Authenticator, AuthSettings, Role, issue_staff_token
from shared.errors import install_error_handlers
from shared.organisation import OrgUnit

SETTINGS = AuthSettings(environment="development")
POLICIES = load_scoring_policies()
URL = "/api/v1/grades/what-if?period=2026-12&scope=group"
BODY = {"policy_version": next(iter(POLICIES))}


def scoring_api(what_ifs: asyncio.Semaphore) -> TestClient:
    app = FastAPI()
    app.state.authenticator = Authenticator(SETTINGS, audience="scoring")
    app.state.policies = POLICIES
    app.state.pool = None
    app.state.what_ifs = what_ifs
    app.include_router(api.router)
    install_error_handlers(app)
    return TestClient(app)


def headers(*roles: Role) -> dict[str, str]:
    token = issue_staff_token(SETTINGS, "someone", OrgUnit(), roles, timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


def test_a_front_line_or_handler_caller_may_not_ask_for_a_what_if() -> None:
    client = scoring_api(asyncio.Semaphore(1))
    for role in (Role.front_line, Role.handler, Role.hall_manager):
        assert client.post(URL, json=BODY, headers=headers(role)).status_code == 403


def test_a_second_what_if_while_one_runs_is_refused_with_429() -> None:
    running = asyncio.Semaphore(1)
    running._value = 0
    response = scoring_api(running).post(URL, json=BODY, headers=headers(Role.quality_manager))
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "5"


def test_a_what_if_running_too_long_is_cut_off_with_503(monkeypatch: pytest.MonkeyPatch) -> None:
    async def endless(*_: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(api, "what_if", endless)
    monkeypatch.setattr(api, "WHAT_IF_SECONDS", 0.05)
    running = asyncio.Semaphore(1)
    response = scoring_api(running).post(URL, json=BODY, headers=headers(Role.quality_manager))
    assert response.status_code == 503, response.text
    assert not running.locked()  # the next may run
