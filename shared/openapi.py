"""What every service's OpenAPI document says beyond what FastAPI derives: who may call (security schemes),
the errors a route can answer (in the one error shape, `shared/errors.py`), a tag per resource, and operation
ids named after the route's function (`register_complaint`), stable across releases."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from shared.tracing import NO_FASTAPI_TELEMETRY

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

PUBLIC_PREFIXES = ("/api/v1/public/", "/healthz", "/readyz", "/metrics")
CREDENTIALS: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A staff token."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A front-line system's key."},
}
ERROR_BODY = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}
ERROR_CONTENT = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
SECURED_ERRORS = {"401": "No valid credentials.", "403": "The caller's role may not do this."}
BODY_ERRORS = {
    "400": "The body is not what the route reads (not JSON, or not UTF-8).",
    "409": "Refused as things stand (the text says what is missing), or its Idempotency-Key was used for another.",
    "413": "The body is larger than the service takes.",
}
NAMED_ERRORS = {"404": "Nothing of that id that the caller may see."}
ANY_ERRORS = {"503": "The database is unavailable: retry (with the same Idempotency-Key)."}


def error_responses(**described: str) -> dict[int | str, dict[str, Any]]:
    """A route's own error statuses, beside those every route of its kind has (`_describe`):
    `error_responses(e404="No complaint with this number")`."""
    return {
        int(status.removeprefix("e")): {"description": text, "content": {"application/json": ERROR_CONTENT}}
        for status, text in described.items()
    }


def operation_id(route: APIRoute) -> str:
    return route.name


def service_app(title: str, lifespan: Lifespan) -> FastAPI:
    """A service's application: operation ids after its functions, FastAPI's own telemetry off (see
    `NO_FASTAPI_TELEMETRY`). Call `describe_api` once its routers are included."""
    return FastAPI(
        title=title,
        version="1",
        lifespan=lifespan,
        telemetry=NO_FASTAPI_TELEMETRY,
        generate_unique_id_function=operation_id,
    )


def describe_api(app: FastAPI) -> None:
    """Call once every router is included."""
    derive: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = derive()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = SECURITY_SCHEMES
            components.setdefault("schemas", {})["ErrorBody"] = ERROR_BODY
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    _describe(path, operation)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe(path: str, operation: dict[str, Any]) -> None:
    public = path.startswith(PUBLIC_PREFIXES)
    operation["security"] = [] if public else CREDENTIALS
    if not operation.get("tags"):
        operation["tags"] = [path.removeprefix("/api/v1/").split("/")[0] or "service"]
    errors = {**ANY_ERRORS, **({} if public else SECURED_ERRORS)}
    if "{" in path:
        errors |= NAMED_ERRORS
    if "requestBody" in operation:
        errors |= BODY_ERRORS
    responses = operation.setdefault("responses", {})
    for status, description in errors.items():
        responses.setdefault(
            status,
            {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            },
        )
