from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shared.auth import (
    CLOCK_SKEW,
    Authenticator,
    AuthSettings,
    Forbidden,
    KeyFailures,
    Principal,
    Role,
    TooManyKeyFailures,
    Unauthenticated,
    hash_api_key,
    issue_staff_token,
    load_api_keys,
    require_roles,
)
from shared.errors import install_error_handlers
from shared.organisation import OrgUnit

SECRET = "a-test-secret-that-is-long-enough-for-hs256"  # noqa: S105
AUDIENCE = "complaints"
POS_KEY = "pos-secret-of-the-shenzhen-counter-system"
SHENZHEN = OrgUnit(("广东", "深圳"))
HALL = OrgUnit.of_hall("广东", "深圳", "GD-SZ-001")


def settings(**overrides: object) -> AuthSettings:
    values: dict[str, object] = {"environment": "development", "jwt_secret": SECRET, "jwt_issuer": "service-quality"}
    return AuthSettings.model_validate(values | overrides)


def signed_in() -> Principal:
    raise NotImplementedError("each test app overrides this with an Authenticator")


# An alias naming a local Authenticator would not resolve under `from __future__ import annotations`.
CurrentPrincipal = Annotated[Principal, Depends(signed_in)]
router = APIRouter()


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> dict[str, object]:
    return {"subject": principal.subject, "unit": str(principal.unit), "roles": sorted(principal.roles)}


@router.get("/audit")
async def audit(principal: CurrentPrincipal) -> None:
    require_roles(principal, Role.auditor)


def client(auth_settings: AuthSettings, authenticator: Authenticator | None = None) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.dependency_overrides[signed_in] = authenticator or Authenticator(auth_settings, audience=AUDIENCE)
    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff_token(lifetime: timedelta = timedelta(minutes=5), **overrides: object) -> str:
    return issue_staff_token(settings(**overrides), "staff-1001", SHENZHEN, [Role.handler], lifetime)


def assert_unauthenticated(response: httpx.Response, header: str, message: str) -> None:
    assert response.status_code == 401
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", header]
    assert error["type"] == "unauthenticated"
    assert message in error["msg"]


def key_file(tmp_path: Path, entries: dict[str, object]) -> Path:
    path = tmp_path / "api-keys.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


def test_unit_text_round_trips_at_every_level() -> None:
    for text, level in [
        ("group", "group"),
        ("group/广东", "province"),
        ("group/广东/深圳", "city"),
        ("group/广东/深圳/GD-SZ-001", "hall"),
    ]:
        unit = OrgUnit.parse(text)
        assert str(unit) == text
        assert unit.level == level
    assert OrgUnit.parse("group/广东/深圳/GD-SZ-001") == HALL


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("广东/深圳", "must start with 'group'"),
        ("", "must start with 'group'"),
        ("group/广东//GD-SZ-001", "is not empty"),
        ("group/", "is not empty"),
        ("group/广东/深圳/GD-SZ-001/柜台3", "deeper than group/province/city/hall"),
    ],
)
def test_unit_text_that_is_not_a_path_below_group_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OrgUnit.parse(text)


def test_a_city_contains_itself_and_its_halls_but_not_another_city() -> None:
    assert SHENZHEN.contains(SHENZHEN)
    assert SHENZHEN.contains(HALL)
    assert not SHENZHEN.contains(OrgUnit.of_hall("广东", "广州", "GD-GZ-001"))
    assert not SHENZHEN.contains(OrgUnit(("广东",)))
    assert OrgUnit().contains(HALL)


def test_a_principal_sees_only_its_own_subtree() -> None:
    manager = Principal("staff-1001", SHENZHEN, frozenset({Role.hall_manager}))

    assert manager.can_see(HALL)
    assert not manager.can_see(OrgUnit(("广东", "广州")))


def test_admin_has_every_role() -> None:
    admin = Principal("staff-1", OrgUnit(), frozenset({Role.admin}))

    assert all(admin.has_any(role) for role in Role)


def test_a_valid_staff_token_yields_its_principal() -> None:
    response = client(settings()).get("/whoami", headers=bearer(staff_token()))

    assert response.status_code == 200
    assert response.json() == {"subject": "staff-1001", "unit": "group/广东/深圳", "roles": ["handler"]}


def test_a_token_that_verified_before_is_refused_once_it_expires() -> None:
    token = staff_token(lifetime=timedelta(minutes=5))
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    seconds_now = [expires_at - 60.0]
    authenticated = client(settings(), Authenticator(settings(), AUDIENCE, seconds_now=lambda: seconds_now[0]))
    assert authenticated.get("/whoami", headers=bearer(token)).status_code == 200

    seconds_now[0] = expires_at + CLOCK_SKEW.total_seconds() + 1.0

    assert_unauthenticated(authenticated.get("/whoami", headers=bearer(token)), "Authorization", "token has expired")


def test_a_request_without_credentials_is_refused() -> None:
    assert_unauthenticated(client(settings()).get("/whoami"), "Authorization", "missing credentials")


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (staff_token(lifetime=timedelta(minutes=-1)), "token has expired"),
        (staff_token(jwt_secret="another-secret-that-is-long-enough-too"), "signature is invalid"),  # noqa: S106
        (staff_token(jwt_issuer="someone-else"), "wrong issuer"),
        ("not.a.jwt", "malformed"),
    ],
    ids=["expired", "wrong-secret", "wrong-issuer", "malformed"],
)
def test_a_bad_staff_token_is_refused_without_echoing_it(token: str, problem: str) -> None:
    response = client(settings()).get("/whoami", headers=bearer(token))

    assert_unauthenticated(response, "Authorization", problem)
    assert token not in response.text


def test_an_authorization_header_that_is_not_bearer_is_refused() -> None:
    response = client(settings()).get("/whoami", headers={"Authorization": "Basic c3RhZmY6cHc="})

    assert_unauthenticated(response, "Authorization", "expected 'Bearer <token>'")


@pytest.mark.parametrize(
    ("claim", "value"), [("unit", "province/广东"), ("roles", ["superuser"]), ("roles", [])], ids=str
)
def test_a_signed_token_with_a_bad_unit_or_role_claim_is_refused(claim: str, value: object) -> None:
    claims: dict[str, object] = {
        "sub": "staff-1001",
        "unit": "group/广东",
        "roles": ["handler"],
        "iss": "service-quality",
    }
    now = datetime.now(UTC)
    claims |= {claim: value, "aud": [AUDIENCE], "iat": now, "exp": now + timedelta(minutes=5)}
    token = jwt.encode(claims, SECRET, algorithm="HS256")

    response = client(settings()).get("/whoami", headers=bearer(token))

    assert_unauthenticated(response, "Authorization", f"invalid '{claim}' claim")


def test_a_refusal_carries_a_bearer_challenge() -> None:
    response = client(settings()).get("/whoami")

    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_configured_api_key_yields_its_principal(tmp_path: Path) -> None:
    path = key_file(
        tmp_path,
        {hash_api_key(POS_KEY): {"name": "pos-gd-sz-001", "unit": str(HALL), "roles": ["front_line"]}},
    )

    response = client(settings(api_keys_file=path)).get("/whoami", headers={"X-API-Key": POS_KEY})

    assert response.status_code == 200
    assert response.json() == {"subject": "pos-gd-sz-001", "unit": str(HALL), "roles": ["front_line"]}


def test_an_unknown_api_key_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, {hash_api_key(POS_KEY): {"name": "pos", "unit": "group", "roles": ["front_line"]}})

    guessed = {"X-API-Key": "a-guessed-key-that-is-long-enough-to-look-up"}
    response = client(settings(api_keys_file=path)).get("/whoami", headers=guessed)

    assert_unauthenticated(response, "X-API-Key", "unknown API key")


def test_a_request_with_both_credentials_is_refused() -> None:
    response = client(settings()).get("/whoami", headers=bearer(staff_token()) | {"X-API-Key": POS_KEY})

    assert_unauthenticated(response, "X-API-Key", "not both")


def test_a_bad_key_file_entry_is_named_at_start_up(tmp_path: Path) -> None:
    good, bad = hash_api_key("good"), hash_api_key("bad")
    path = key_file(
        tmp_path,
        {
            good: {"name": "pos-1", "unit": "group/广东", "roles": ["front_line"]},
            bad: {"name": "pos-2", "unit": "广东/深圳", "roles": ["front_line"]},
        },
    )

    with pytest.raises(ValueError, match=rf"{bad}\.unit: .*must start with 'group'"):
        Authenticator(settings(api_keys_file=path), AUDIENCE)


def test_a_key_file_holding_raw_keys_instead_of_digests_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, {POS_KEY: {"name": "pos", "unit": "group", "roles": ["front_line"]}})

    with pytest.raises(ValueError, match=POS_KEY):
        load_api_keys(path)


@pytest.mark.parametrize("environment", ["production", None])
def test_only_an_explicit_development_environment_takes_the_development_secret(
    monkeypatch: pytest.MonkeyPatch, environment: str | None
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    if environment is None:
        monkeypatch.delenv("ENVIRONMENT", raising=False)
    else:
        monkeypatch.setenv("ENVIRONMENT", environment)
    with pytest.raises(ValidationError, match="ENVIRONMENT=development"):
        AuthSettings()
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert AuthSettings().development


def test_production_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")

    monkeypatch.setenv("JWT_SECRET", "too-short")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        AuthSettings()

    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert AuthSettings().environment == "production"


def test_require_roles_refuses_a_principal_without_them() -> None:
    handler = Principal("staff-1001", SHENZHEN, frozenset({Role.handler}))

    with pytest.raises(Forbidden, match="auditor"):
        require_roles(handler, Role.auditor, Role.quality_manager)
    require_roles(handler, Role.auditor, Role.handler)


def test_a_principal_without_the_role_gets_403() -> None:
    response = client(settings()).get("/audit", headers=bearer(staff_token()))

    assert response.status_code == 403
    assert response.json()["detail"] == [{"loc": [], "msg": "requires one of the roles: auditor", "type": "forbidden"}]


def test_a_token_for_another_service_or_without_an_audience_is_refused() -> None:
    for_scoring = issue_staff_token(
        settings(), "staff-1001", SHENZHEN, [Role.handler], timedelta(minutes=5), ["scoring"]
    )
    assert_unauthenticated(
        client(settings()).get("/whoami", headers=bearer(for_scoring)), "Authorization", "not for this service"
    )
    now = datetime.now(UTC)
    claims = {"sub": "s", "unit": "group", "roles": ["handler"], "iss": "service-quality", "iat": now}
    without = jwt.encode(claims | {"exp": now + timedelta(minutes=5)}, SECRET, algorithm="HS256")
    assert_unauthenticated(
        client(settings()).get("/whoami", headers=bearer(without)), "Authorization", "required claim"
    )


def test_a_token_living_longer_than_the_maximum_is_refused() -> None:
    forever = staff_token(lifetime=timedelta(days=3650))
    assert_unauthenticated(client(settings()).get("/whoami", headers=bearer(forever)), "Authorization", "maximum")
    day = staff_token(lifetime=timedelta(hours=24))
    assert client(settings()).get("/whoami", headers=bearer(day)).status_code == 200


def test_a_token_issued_a_few_seconds_ahead_is_taken_within_the_leeway() -> None:
    ahead = datetime.now(UTC) + timedelta(seconds=3)
    claims = {"sub": "s", "unit": "group", "roles": ["handler"], "iss": "service-quality", "aud": [AUDIENCE]}
    token = jwt.encode(claims | {"iat": ahead, "nbf": ahead, "exp": ahead + timedelta(minutes=5)}, SECRET, "HS256")
    assert client(settings()).get("/whoami", headers=bearer(token)).status_code == 200
    far_ahead = datetime.now(UTC) + timedelta(minutes=5)
    later = jwt.encode(
        claims | {"iat": far_ahead, "nbf": far_ahead, "exp": far_ahead + timedelta(minutes=5)}, SECRET, "HS256"
    )
    assert_unauthenticated(client(settings()).get("/whoami", headers=bearer(later)), "Authorization", "not valid yet")


def test_a_short_or_expired_api_key_is_refused(tmp_path: Path) -> None:
    expired = "pos-key-of-a-counter-that-was-retired-last-year"
    entries: dict[str, object] = {
        hash_api_key("short"): {"name": "pos-short", "unit": "group", "roles": ["front_line"]},
        hash_api_key(expired): {
            "name": "pos-old",
            "unit": "group",
            "roles": ["front_line"],
            "expires_at": "2020-01-01T00:00:00+08:00",
        },
    }
    service = client(settings(api_keys_file=key_file(tmp_path, entries)))
    assert_unauthenticated(service.get("/whoami", headers={"X-API-Key": "short"}), "X-API-Key", "at least 32")
    assert_unauthenticated(service.get("/whoami", headers={"X-API-Key": expired}), "X-API-Key", "expired")


def test_an_address_sending_unknown_api_keys_is_throttled_and_others_are_not(tmp_path: Path) -> None:
    path = key_file(tmp_path, {hash_api_key(POS_KEY): {"name": "pos", "unit": "group", "roles": ["front_line"]}})
    authenticator = Authenticator(settings(api_keys_file=path), AUDIENCE)
    limit = KeyFailures().limit
    for attempt in range(limit):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate({"X-API-Key": f"guess-{attempt:04}-that-is-long-enough-to-look-up"}, "10.0.0.9")

    with pytest.raises(TooManyKeyFailures) as throttled:
        authenticator.authenticate({"X-API-Key": POS_KEY}, "10.0.0.9")  # even a right key, from there
    assert int(throttled.value.headers["Retry-After"]) > 0
    assert authenticator.authenticate({"X-API-Key": POS_KEY}, "10.0.0.10").subject == "pos"


def test_key_failures_age_out_of_their_window_and_few_addresses_are_kept() -> None:
    now = [0.0]
    failures = KeyFailures(limit=2, window_seconds=60, addresses_kept=3, seconds_now=lambda: now[0])
    failures.failed("a")
    failures.failed("a")
    assert failures.retry_after("a") == 60
    now[0] = 30
    assert failures.retry_after("a") == 30
    now[0] = 60
    assert failures.retry_after("a") is None  # both aged out
    for address in ("b", "c", "d", "e"):
        failures.failed(address)
        failures.failed(address)
    assert failures.retry_after("b") is None  # forgotten: only the three newest addresses are kept
    assert failures.retry_after("e") is not None
