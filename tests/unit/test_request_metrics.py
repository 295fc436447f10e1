"""Every request is counted by its status, a server error (500) too, so error alerts see it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shared.errors import install_error_handlers
from shared.metrics import instrument


def answered(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("http_server_requests_total", labels) or 0.0


def test_a_request_the_service_fails_on_is_counted_as_a_500() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/unit-test/fails")
    def fails() -> None:
        raise RuntimeError("a bug")

    @app.get("/unit-test/works")
    def works() -> dict[str, bool]:
        return {"ok": True}

    instrument(app)
    before_failed, before_worked = answered("/unit-test/fails", "500"), answered("/unit-test/works", "200")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/unit-test/fails").status_code == 500
        assert client.get("/unit-test/fails").status_code == 500
        assert client.get("/unit-test/works").status_code == 200

    assert answered("/unit-test/fails", "500") == before_failed + 2
    assert answered("/unit-test/works", "200") == before_worked + 1
