"""With Redis unreachable: rate limits fail open or closed as asked; idempotency fails closed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError

from kernel.http import install_conventions
from kernel.ratelimit import rate_limited
from kernel.settings import Settings

ASYNC = pytest.mark.asyncio(loop_scope="session")


class DownRedis:
    """Every command fails as with a Redis that is not there."""

    def register_script(self, script: str) -> Any:
        async def run(**_: Any) -> Any:
            raise RedisConnectionError("connection refused")

        return run

    async def set(self, *_: Any, **__: Any) -> Any:
        raise RedisConnectionError("connection refused")

    async def get(self, *_: Any, **__: Any) -> Any:
        raise RedisConnectionError("connection refused")


def make_app() -> FastAPI:
    app = FastAPI()
    install_conventions(app, cors_origins=(), max_body=1024, redis=DownRedis(),  # type: ignore[arg-type]
                        settings=Settings(env="test"))

    @app.post("/reads", dependencies=[Depends(rate_limited("reads"))])
    async def reads() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/login", dependencies=[Depends(rate_limited("login", 0.1, 5, fail_open=False))])
    async def login() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def _post(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, json={}, headers=headers or {})


@ASYNC
async def test_an_open_limit_lets_the_request_through() -> None:
    resp = await _post("/reads")
    assert resp.status_code == 200
    assert "ratelimit-limit" not in resp.headers


@ASYNC
async def test_a_closed_limit_answers_503_problem() -> None:
    resp = await _post("/login")
    assert resp.status_code == 503
    assert resp.json()["type"] == "urn:propstream:problem:rate-limit-unavailable"
    assert resp.headers["retry-after"] == "1"


@ASYNC
async def test_an_idempotency_key_without_redis_is_503_problem() -> None:
    resp = await _post("/reads", headers={"Idempotency-Key": "k-1"})
    assert resp.status_code == 503
    assert resp.json()["type"] == "urn:propstream:problem:idempotency-unavailable"


@ASYNC
async def test_a_post_without_a_key_does_not_need_the_idempotency_store() -> None:
    assert (await _post("/reads")).status_code == 200
