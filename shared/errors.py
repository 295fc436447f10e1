"""One error shape for every service: 4xx with the field and the problem, never a bare 500."""

from __future__ import annotations

import logging
import re
import socket

import asyncpg
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.metrics import route_template

logger = logging.getLogger(__name__)
FRAMEWORK_ERRORS = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
FRAMEWORK_LOCATIONS: dict[int, tuple[str | int, ...]] = {400: ("body",), 404: ("path",), 405: ("method",)}


class ServiceError(Exception):
    """A refused request; subclasses set the HTTP status, a machine-readable type and the field."""

    status_code = 409
    error_type = "conflict"
    field: tuple[str | int, ...] = ()  # list indices as numbers, as in FastAPI's own `loc`

    def __init__(self, message: str, field: tuple[str | int, ...] | None = None) -> None:
        """`field` overrides the class's for refusals whose field is known only when raised."""
        super().__init__(message)
        if field is not None:
            self.field = field


def error_body(location: tuple[str | int, ...], message: str, error_type: str) -> dict[str, object]:
    """Same shape as FastAPI's validation errors, so clients parse one format."""
    return {"detail": [{"loc": list(location), "msg": message, "type": error_type}]}


def validation_error_body(error: RequestValidationError) -> dict[str, object]:
    """FastAPI's 422 without the rejected `input` (and `ctx`): echoing a NaN or Infinity the body
    carried made the response itself unserialisable, a 500; it also repeated the customer's data."""
    return {
        "detail": [
            {"loc": list(problem["loc"]), "msg": problem["msg"], "type": problem["type"]} for problem in error.errors()
        ]
    }


def methods_of(app: FastAPI, path: str) -> list[str]:
    """Every method some route takes at `path`, as the OpenAPI document lists them."""
    return sorted(
        method.upper()
        for template, operations in app.openapi()["paths"].items()
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path)
        for method in operations
    )


# The database gone, unreachable, starting, out of connections, its lock not given in time or a transaction it
# rolled back (deadlock), through either driver: the event store's (eventsourcing on psycopg, whose
# OperationalError covers all of these) or a service's asyncpg pool, which raises the socket's errors as they are.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a pooled connection whose server died with an operation under way
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.LockNotAvailableError,
    asyncpg.TransactionRollbackError,
    asyncpg.PostgresSystemError,
    ConnectionError,
    socket.gaierror,
    TimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error_body(error), status_code=422)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        if error.status_code in (401, 403):  # for whoever watches for probing; the text names no credential
            route = route_template(request.scope)
            logger.info("refused %s %s with %d: %s", request.method, route, error.status_code, error)
        return JSONResponse(
            error_body(error.field, str(error), error.error_type),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    async def store_unavailable(_: Request, error: Exception) -> JSONResponse:
        # The driver's first line says which: no connection free in time, the server gone, a deadlock; it holds
        # no row's values.
        cause = str(error).partition("\n")[0][:200]
        logger.warning("event store unavailable: %s: %s", type(error).__name__, cause)
        return JSONResponse(
            error_body((), "the database is unavailable; retry with the same Idempotency-Key", "unavailable"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals (a body it cannot parse: 400, no such path: 404, a method the path does
        not take: 405) in the one error shape, not its `{"detail": "Not Found"}`."""
        where: tuple[str | int, ...] = FRAMEWORK_LOCATIONS.get(error.status_code, ("request",))
        problem = FRAMEWORK_ERRORS.get(error.status_code, "http_error")
        headers = dict(error.headers or {})
        if error.status_code == 405:  # the router names one route's methods; a path may have several routes
            headers["Allow"] = ", ".join(methods_of(app, request.url.path)) or headers.get("Allow", "")
        return JSONResponse(
            error_body(where, str(error.detail), problem), status_code=error.status_code, headers=headers
        )

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, store_unavailable)
