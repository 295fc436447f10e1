"""Who is calling and which part of the organisation they may see: staff JWTs and front-line API keys."""

from __future__ import annotations

import collections
import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from fastapi import Depends, Request
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    PlainValidator,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ServiceError
from shared.organisation import OrgUnit

# Public on purpose so local runs need no set-up; AuthSettings refuses it in production.
DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105
_ALGORITHM = "HS256"


class Role(StrEnum):
    front_line = "front_line"
    handler = "handler"
    hall_manager = "hall_manager"
    inspector = "inspector"
    quality_manager = "quality_manager"
    auditor = "auditor"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str  # API key name or staff id, so it can go into logs and events: never personal data
    unit: OrgUnit
    roles: frozenset[Role]

    def can_see(self, unit: OrgUnit) -> bool:
        return self.unit.contains(unit)

    def has_any(self, *roles: Role) -> bool:
        """Admin counts as every role."""
        return Role.admin in self.roles or not self.roles.isdisjoint(roles)


class Unauthenticated(ServiceError):
    status_code = 401
    error_type = "unauthenticated"
    # RFC 9110 requires a challenge on every 401; the error handler sends these headers.
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message, ("header", header))


class TooManyKeyFailures(ServiceError):
    status_code = 429
    error_type = "too_many_attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(int(retry_after) + 1, 1)
        super().__init__(
            f"too many unknown API keys from your address; try again in {seconds} s", ("header", "X-API-Key")
        )
        self.headers = {"Retry-After": str(seconds)}


class KeyFailures:
    """Failed API keys by client address: past `limit` in `window_seconds`, the address is refused (429)
    until its oldest failure ages out, so keys cannot be guessed at speed. Kept in the process, for at most
    `addresses_kept` addresses (the oldest forgotten first): each replica throttles on its own."""

    def __init__(
        self,
        limit: int = 10,
        window_seconds: float = 300,
        addresses_kept: int = 10_000,
        seconds_now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.addresses_kept = addresses_kept
        self._seconds_now = seconds_now
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until the address may try again; None if it may now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._seconds_now()
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures[0] + self.window_seconds - now if len(failures) >= self.limit else None

    def failed(self, client: str) -> None:
        failures = self._failures.setdefault(client, collections.deque(maxlen=self.limit))
        failures.append(self._seconds_now())
        self._failures.move_to_end(client)
        while len(self._failures) > self.addresses_kept:
            self._failures.popitem(last=False)


class Forbidden(ServiceError):
    status_code = 403
    error_type = "forbidden"


def require_roles(principal: Principal, *roles: Role) -> None:
    """Refuses unless the principal has at least one of `roles`."""
    if not principal.has_any(*roles):
        raise Forbidden(f"requires one of the roles: {', '.join(roles)}")


# The services a staff token may be for (its `aud`): each accepts only tokens naming it.
AUDIENCES = ("complaints", "escalation", "scoring", "projections")
CLOCK_SKEW = timedelta(seconds=30)  # leeway on a token's times, for clocks a little apart
MIN_API_KEY_LENGTH = 32


class AuthSettings(BaseSettings):
    """`ENVIRONMENT`, `JWT_SECRET`, `JWT_ISSUER`, `API_KEYS_FILE`, `MAX_TOKEN_LIFETIME` (seconds, or an ISO 8601
    duration such as `PT12H`) as environment variables."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # Unset counts as production: the development secret and test clocks need it said outright.
    environment: Literal["development", "production"] | None = None
    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    jwt_issuer: str = "service-quality"
    api_keys_file: Path | None = None
    max_token_lifetime: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @model_validator(mode="after")
    def _a_real_secret_unless_in_development(self) -> Self:
        secret = self.jwt_secret.get_secret_value()
        if secret == DEVELOPMENT_SECRET and not self.development:
            raise ValueError("JWT_SECRET must be set: the development secret works only with ENVIRONMENT=development")
        if not self.development and len(secret.encode()) < 32:
            raise ValueError("JWT_SECRET must be a secret of at least 32 bytes")
        return self


def _unit_from_text(value: object) -> OrgUnit:
    if not isinstance(value, str):
        raise ValueError("must be a string such as 'group/广东/深圳'")
    return OrgUnit.parse(value)


class _Grant(BaseModel):
    unit: Annotated[OrgUnit, PlainValidator(_unit_from_text)]
    roles: frozenset[Role] = Field(min_length=1)


class _StaffClaims(_Grant):
    sub: str = Field(min_length=1)


class _ApiKeyEntry(_Grant):
    name: str = Field(min_length=1)
    expires_at: AwareDatetime | None = None  # none: until the entry is removed


_Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_API_KEYS_FILE = TypeAdapter(dict[_Sha256Hex, _ApiKeyEntry])


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    principal: Principal
    expires_at: datetime | None


def load_api_keys(path: Path) -> dict[str, ApiKey]:
    """Reads `{"<hash_api_key(key)>": {"name": ..., "unit": "group/...", "roles": [...], "expires_at": ...}}`,
    keyed by digest (`expires_at` optional).

    Raises `ValueError` naming each bad entry by its digest, so a broken file stops the service at start-up.
    """
    try:
        entries = _API_KEYS_FILE.validate_json(path.read_bytes())
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in error.errors())
        raise ValueError(f"API keys file {path}: {problems}") from None
    return {
        digest: ApiKey(Principal(entry.name, entry.unit, entry.roles), entry.expires_at)
        for digest, entry in entries.items()
    }


def issue_staff_token(
    settings: AuthSettings,
    subject: str,
    unit: OrgUnit,
    roles: Iterable[Role],
    lifetime: timedelta,
    audience: Iterable[str] = AUDIENCES,
) -> str:
    """A token for the services of `audience` (by default all of them)."""
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "unit": str(unit),
        "roles": sorted(roles),
        "iss": settings.jwt_issuer,
        "aud": sorted(audience),
        "iat": now,
        "exp": now + lifetime,
    }
    import jwt

    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=_ALGORITHM)


def _token_problem(error: Exception) -> str:
    """Our own fixed wording for what is wrong with a token, so nothing taken from it is ever echoed back."""
    import jwt

    problems: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
        (jwt.ExpiredSignatureError, "token has expired"),
        (jwt.InvalidIssuerError, "token has the wrong issuer"),
        (jwt.InvalidAudienceError, "token is not for this service"),
        (jwt.ImmatureSignatureError, "token is not valid yet"),
        (jwt.InvalidSignatureError, "token signature is invalid"),
        (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    )
    return next((text for kind, text in problems if isinstance(error, kind)), "token is malformed")


class Authenticator:
    """FastAPI dependency resolving the caller to a `Principal`, or refusing with 401.

    Build one per service at start-up and alias it:
    `CurrentPrincipal = Annotated[Principal, Depends(Authenticator(AuthSettings()))]`.
    """

    VERIFIED_TOKENS_KEPT = 4096

    def __init__(self, settings: AuthSettings, audience: str, seconds_now: Callable[[], float] = time.time) -> None:
        """`audience`: the service; a token must name it in its `aud`."""
        self._settings = settings
        self._audience = audience
        self._seconds_now = seconds_now
        self._api_keys = load_api_keys(settings.api_keys_file) if settings.api_keys_file else {}
        # A front-line system sends one token with many requests; checking its signature each time
        # was a measurable share of intake. Only tokens that verified are kept, and expiry is checked
        # on every request.
        self._verified = functools.lru_cache(maxsize=self.VERIFIED_TOKENS_KEPT)(self._verify)
        self._key_failures = KeyFailures()

    async def __call__(self, request: Request) -> Principal:
        return self.authenticate(request.headers, request.client.host if request.client else None)

    def authenticate(self, headers: Mapping[str, str], client: str | None = None) -> Principal:
        """The caller the request's headers name, or `Unauthenticated` saying what is wrong; an address
        (`client`) that sent too many unknown API keys gets `TooManyKeyFailures` instead."""
        authorization = headers.get("Authorization")
        api_key = headers.get("X-API-Key")
        if authorization is not None and api_key is not None:
            # Two identities in one request: picking either would be a guess.
            raise Unauthenticated("X-API-Key", "send either Authorization or X-API-Key, not both")
        if authorization is not None:
            return self._staff(authorization)
        if api_key is not None:
            address = client or "unknown"
            if (retry_after := self._key_failures.retry_after(address)) is not None:
                raise TooManyKeyFailures(retry_after)
            try:
                return self._front_line(api_key)
            except Unauthenticated:
                self._key_failures.failed(address)
                raise
        raise Unauthenticated("Authorization", "missing credentials: send 'Authorization: Bearer <token>'")

    def _staff(self, authorization: str) -> Principal:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization", "expected 'Bearer <token>'")
        principal, expires_at = self._verified(token.strip())
        if expires_at + CLOCK_SKEW.total_seconds() <= self._seconds_now():
            raise Unauthenticated("Authorization", "token has expired")
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The token's principal and expiry (seconds since the epoch), if its signature and claims hold."""
        # Imported when first needed: PyJWT loads the cryptography library, a tenth of a second of
        # start-up for services that must answer within two seconds of a restart.
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._settings.jwt_secret.get_secret_value(),
                algorithms=[_ALGORITHM],
                issuer=self._settings.jwt_issuer,
                audience=self._audience,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            raise Unauthenticated("Authorization", _token_problem(error)) from None
        try:
            staff = _StaffClaims.model_validate(claims)
        except ValidationError as error:
            claim = error.errors()[0]["loc"][0]
            raise Unauthenticated("Authorization", f"token has an invalid '{claim}' claim") from None
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > (self._settings.max_token_lifetime + CLOCK_SKEW).total_seconds():
            raise Unauthenticated("Authorization", "token lives longer than the maximum lifetime")
        return Principal(staff.sub, staff.unit, staff.roles), float(claims["exp"])

    def _front_line(self, api_key: str) -> Principal:
        if len(api_key) < MIN_API_KEY_LENGTH:
            raise Unauthenticated("X-API-Key", f"an API key has at least {MIN_API_KEY_LENGTH} characters")
        # A dict lookup by digest leaks nothing through timing: a caller cannot steer the digest it probes.
        entry = self._api_keys.get(hash_api_key(api_key))
        if entry is None:
            raise Unauthenticated("X-API-Key", "unknown API key")
        if entry.expires_at is not None and entry.expires_at.timestamp() <= self._seconds_now():
            raise Unauthenticated("X-API-Key", "API key has expired")
        return entry.principal


# In a request's own scope, not its state: the state may start as a copy of what the lifespan shares.
_AUTHENTICATED_CALLER = "shared.auth.caller"


def remember_caller(scope: MutableMapping[str, Any], principal: Principal) -> None:
    """Keeps the caller a middleware authenticated for the request: `Caller` takes it rather than
    authenticating the same headers again."""
    scope[_AUTHENTICATED_CALLER] = principal


async def current_principal(request: Request) -> Principal:
    """The dependency behind `Caller`: the caller remembered for the request (`remember_caller`), else as the
    `Authenticator` the app keeps in `app.state.authenticator` finds it."""
    remembered: Principal | None = request.scope.get(_AUTHENTICATED_CALLER)
    if remembered is not None:
        return remembered
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator(request)


Caller = Annotated[Principal, Depends(current_principal)]
