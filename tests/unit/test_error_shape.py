"""Every error answers in one shape, the framework's own 404 and 405 included."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from shared.errors import install_error_handlers


def client() -> TestClient:
    app = FastAPI()

    @app.get("/api/v1/things")
    def things() -> list[str]:
        return []

    install_error_handlers(app)
    return TestClient(app)


def test_an_unknown_path_is_a_404_in_the_one_error_shape() -> None:
    answer = client().get("/api/v1/no-such-thing")

    assert answer.status_code == 404
    assert answer.json() == {"detail": [{"loc": ["path"], "msg": "Not Found", "type": "not_found"}]}


def test_a_method_the_path_does_not_take_is_a_405_saying_which_it_takes() -> None:
    answer = client().post("/api/v1/things")

    assert answer.status_code == 405
    assert answer.json() == {"detail": [{"loc": ["method"], "msg": "Method Not Allowed", "type": "method_not_allowed"}]}
    assert answer.headers["allow"] == "GET"


def test_a_405_lists_every_method_of_the_path_even_across_routers() -> None:
    app = FastAPI()
    readers, writers = APIRouter(), APIRouter()

    @readers.get("/api/v1/campaigns/{campaign_id}")
    def campaign(campaign_id: str) -> str:
        return campaign_id

    @writers.post("/api/v1/campaigns/{campaign_id}")
    def change(campaign_id: str) -> str:
        return campaign_id

    app.include_router(readers)
    app.include_router(writers)
    install_error_handlers(app)

    answer = TestClient(app).put("/api/v1/campaigns/c-1")

    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"
