"""Every list a request body may carry has a most-items bound, in every service's OpenAPI document: with
the body-size limit, no request makes a service hold more than it should."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.complaints.main import create_app as complaints
from services.escalation.main import create_app as escalation
from services.projections.main import create_app as projections
from services.scoring.main import create_app as scoring


def unbounded_lists(schema: Any, schemas: dict[str, Any], path: str, seen: set[str]) -> list[str]:
    """The paths of the arrays without `maxItems` in `schema`, following references once each."""
    if isinstance(schema, list):
        return [found for i, item in enumerate(schema) for found in unbounded_lists(item, schemas, path, seen)]
    if not isinstance(schema, dict):
        return []
    if (ref := schema.get("$ref")) is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return []
        return unbounded_lists(schemas[name], schemas, name, seen | {name})
    found = [path] if schema.get("type") == "array" and "maxItems" not in schema else []
    for key, value in schema.items():
        found += unbounded_lists(value, schemas, f"{path}.{key}", seen)
    return found


@pytest.mark.parametrize("build", [complaints, escalation, projections, scoring], ids=lambda b: b.__module__)
def test_every_list_in_a_request_body_is_bounded(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    app: FastAPI = build()
    document = app.openapi()
    schemas = document.get("components", {}).get("schemas", {})
    bodies = [
        (f"{method.upper()} {path}", operation["requestBody"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    unbounded = {where: lists for where, body in bodies if (lists := unbounded_lists(body, schemas, where, set()))}
    assert unbounded == {}
