"""HTTP conventions: problem+json for every error, request ids, body limit, cursors."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from kernel.http import (
    Problem,
    RequestContextMiddleware,
    decode_cursor,
    encode_cursor,
    install_problem_handlers,
)

ASYNC = pytest.mark.asyncio(loop_scope="session")


class Body(BaseModel):
    name: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body=1024)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/teapot")
    async def teapot() -> None:
        raise Problem(409, "teapot-busy", "The teapot is busy", "try later", retry=3)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@ASYNC
async def test_raised_problem_is_problem_json_with_extras(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:propstream:problem:teapot-busy", "title": "The teapot is busy",
        "status": 409, "detail": "try later", "instance": "/teapot",
        "request_id": response.headers["x-request-id"], "retry": 3,
    }


@ASYNC
async def test_validation_error_lists_each_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"nom": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:propstream:problem:validation-failed"
    assert any(e["location"] == "body.name" for e in body["errors"])


@ASYNC
async def test_unknown_route_and_method_are_problem_json(client: httpx.AsyncClient) -> None:
    for response, status in ((await client.get("/nothing"), 404),
                             (await client.delete("/things"), 405)):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"


@ASYNC
async def test_a_bug_is_a_500_problem_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["type"] == "urn:propstream:problem:internal-error"
    assert "a bug" not in response.text


@ASYNC
async def test_body_over_the_limit_is_413_before_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", content=b'{"name": "' + b"x" * 2000 + b'"}',
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["type"] == "urn:propstream:problem:body-too-large"


@ASYNC
async def test_request_id_is_kept_when_sane_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/teapot", headers={"X-Request-ID": "abcdef123456"})
    assert kept.headers["x-request-id"] == "abcdef123456"
    replaced = await client.get("/teapot", headers={"X-Request-ID": "bad id\nwith newline"})
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"
    assert len(replaced.headers["x-request-id"]) == 32


def test_cursor_round_trips_and_garbage_is_a_400_problem() -> None:
    assert decode_cursor(encode_cursor({"after": "BTC"}), keys=("after",)) == {"after": "BTC"}
    for garbage in ("!!!", "e30", encode_cursor({"other": 1})):
        with pytest.raises(Problem) as caught:
            decode_cursor(garbage, keys=("after",))
        assert caught.value.status == 400 and caught.value.slug == "invalid-cursor"


def _health_app(*, metrics: bool = True) -> httpx.AsyncClient:
    from kernel.http import health_router

    async def healthy() -> None:
        return None

    async def postgres_down() -> None:
        raise ConnectionError('connection to server at "10.0.3.7", port 5432 failed: '
                              'password authentication failed for user "propstream_prod"')

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(health_router({"kafka": healthy, "postgres": postgres_down},
                                     serve_metrics=metrics))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@ASYNC
async def test_readyz_with_a_dependency_down_names_it_but_never_echoes_the_exception(
        capsys: pytest.CaptureFixture[str]) -> None:
    async with _health_app() as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"] == {"kafka": "ok", "postgres": "unavailable"}
    assert "postgres" in body["detail"]
    for leak in ("10.0.3.7", "5432", "propstream_prod", "password", "ConnectionError"):
        assert leak not in response.text
    # The operator still learns why, from the log.
    assert "propstream_prod" in capsys.readouterr().out


@ASYNC
async def test_metrics_leave_the_public_port_when_a_metrics_port_serves_them() -> None:
    async with _health_app(metrics=True) as client:
        assert (await client.get("/metrics")).status_code == 200
    async with _health_app(metrics=False) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/livez")).status_code == 200
