"""Each service's OpenAPI document: readable, unique operation ids, a tag on every operation, the credentials
it takes declared, and the error statuses beyond validation documented in the one error shape."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from services.complaints.main import create_app as complaints
from services.escalation.main import create_app as escalation
from services.projections.main import create_app as projections
from services.scoring.main import create_app as scoring

SERVICES: dict[str, Callable[[], FastAPI]] = {
    "complaints": complaints,
    "escalation": escalation,
    "scoring": scoring,
    "projections": projections,
}


@pytest.fixture(params=list(SERVICES))
def document(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ENVIRONMENT", "development")
    app: FastAPI = SERVICES[request.param]()
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, operation) for path, methods in document["paths"].items() for operation in methods.values()]


def test_operation_ids_are_the_route_functions_names_and_unique(document: dict[str, Any]) -> None:
    ids = collections.Counter(operation["operationId"] for _, operation in operations(document))

    assert [name for name, count in ids.items() if count > 1] == []
    assert all(name.isidentifier() and "api_v1" not in name for name in ids)


def test_every_operation_has_a_tag_and_says_what_credentials_it_takes(document: dict[str, Any]) -> None:
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, operation in operations(document):
        assert operation["tags"], path
        public = path.startswith("/api/v1/public/") or path in ("/healthz", "/readyz")
        assert operation["security"] == ([] if public else [{"bearer": []}, {"apiKey": []}]), path
        if not public:
            for status in ("401", "403", "503"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
        if "requestBody" in operation:
            assert "413" in operation["responses"], path
