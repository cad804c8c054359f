"""HTTP conventions every service shares: problem+json errors, request ids, body limits,
cursor pagination, and the /livez, /readyz and /metrics endpoints."""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import psycopg
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.auth import ApiKeyStore, Authenticator, AuthMiddleware, document_access, public
from kernel.idempotency import REPLAYED_HEADER, IdempotencyMiddleware
from kernel.observability import get_logger
from kernel.problems import PROBLEM_BASE, PROBLEM_JSON, PROBLEM_SCHEMA, Problem, problem_response
from kernel.ratelimit import RESPONSE_HEADERS_KEY, RateLimiter
from kernel.settings import Settings

__all__ = [
    "PROBLEM_BASE", "PROBLEM_JSON", "PROBLEM_SCHEMA", "Problem", "RequestContextMiddleware",
    "decode_cursor", "encode_cursor", "health_router", "install_conventions",
    "install_problem_handlers", "make_cache", "no_store", "postgres_check", "problem_response",
    "redis_check",
]

log = get_logger(__name__)

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_STATUS_TYPES = {
    400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 406: "not-acceptable", 409: "conflict", 413: "body-too-large",
    415: "unsupported-media-type", 422: "validation-failed", 429: "rate-limited",
    500: "internal-error", 503: "unavailable",
}


def _document_validation_errors(app: FastAPI) -> None:
    """FastAPI documents its own 422 (application/json, `HTTPValidationError`) on every route
    with parameters or a body; ours answers problem+json (`on_validation` below). Say so."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        for item in doc.get("paths", {}).values():
            for op in item.values():
                answers = op.get("responses", {}) if isinstance(op, dict) else {}
                if answers.get("422", {}).get("description") == "Validation Error":
                    answers["422"] = {**PROBLEM_SCHEMA, "description": "The request is not valid"}
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    _document_validation_errors(app)
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()[:20]
        ]
        return problem_response(request, Problem(
            422, "validation-failed", "The request is not valid",
            f"{len(errors)} problem(s) with the request", errors=errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = _STATUS_TYPES.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return problem_response(request, Problem(exc.status_code, slug,
                                                 slug.replace("-", " ").capitalize(), detail,
                                                 headers=getattr(exc, "headers", None)))

    async def on_missing_table(request: Request, exc: Exception) -> Response:
        # The projection that owns the table has not created it yet (first start-up).
        return problem_response(request, Problem(
            503, "read-model-unavailable", "The read model is not available yet",
            "its projection has not started; retry shortly", headers={"Retry-After": "2"}))

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(request, Problem(500, "internal-error", "Internal error",
                                                 "the error was logged with this request id"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(psycopg.errors.UndefinedTable, on_missing_table)
    app.add_exception_handler(Exception, on_error)


class RequestContextMiddleware:
    """Give every request an id (or keep a sane one sent in X-Request-ID), log it, echo it,
    refuse bodies over `max_body` bytes with 413 before reading them whole, and add the
    headers left in `request.state.response_headers` to the answer."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope["headers"]}
        sent = headers.get("x-request-id", "")
        rid = sent if REQUEST_ID_RE.match(sent) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                sent_headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in sent_headers}
                # Headers a dependency set for every answer, even a Response it did not make.
                extra: Mapping[str, str] = state.get(RESPONSE_HEADERS_KEY, {})
                sent_headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                                 if k.lower().encode() not in present]
                message["headers"] = [*sent_headers, (b"x-request-id", rid.encode())]
            await send(message)

        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._too_large(scope, send_with_id, rid)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise _BodyTooLarge
                return message

            try:
                await self.app(scope, limited_receive, send_with_id)
            except _BodyTooLarge:
                await self._too_large(scope, send_with_id, rid)
        finally:
            log.info("http request", method=scope.get("method"), path=scope.get("path"),
                     status=status_holder["status"],
                     ms=round((time.perf_counter() - started) * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        body = orjson.dumps({
            "type": PROBLEM_BASE + "body-too-large", "title": "Request body too large",
            "status": 413, "detail": f"the body limit is {self.max_body} bytes",
            "instance": scope.get("path", ""), "request_id": request_id,
        })
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


# -- cursor pagination ------------------------------------------------------------------------


def encode_cursor(values: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(dict(values))).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """Decode an opaque cursor made by `encode_cursor`, or answer 400 problem+json."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise Problem(400, "invalid-cursor", "The cursor is not valid",
                      "pass back the `next_cursor` of a previous page unchanged") from None
    if not isinstance(data, dict) or set(data) != set(keys):
        raise Problem(400, "invalid-cursor", "The cursor is not valid",
                      "pass back the `next_cursor` of a previous page unchanged")
    return data


async def no_store(response: Response) -> None:
    """A dependency for answers that carry a secret (tokens, a new API key): no cache keeps
    them (RFC 6749 5.1), and the idempotency store never writes them to Redis."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


# -- one place for the conventions of every service's app -------------------------------------


def install_conventions(app: FastAPI, *, cors_origins: Sequence[str], max_body: int,
                        expose_headers: Sequence[str] = (), redis: Redis | None = None,
                        settings: Settings | None = None,
                        api_keys: ApiKeyStore | None = None) -> None:
    """problem+json errors, CORS for the frontend, request ids and the body limit; with a
    Redis client and settings also authentication (kernel.auth), Idempotency-Key replay on
    POST/PATCH and the rate limiter that `kernel.ratelimit.rate_limited` dependencies use."""
    install_problem_handlers(app)
    document_access(app)
    if redis is not None:
        if settings is None:
            raise ValueError("install_conventions needs settings along with redis")
        # Innermost: it sees the body after the size limit and answers inside the request id.
        app.add_middleware(IdempotencyMiddleware, redis=redis, namespace=settings.namespace,
                           ttl_s=settings.idempotency_ttl_s,
                           lock_ttl_s=settings.idempotency_lock_ttl_s)
        # Outside idempotency and the limiter: both scope by the caller it proves.
        app.state.authenticator = Authenticator(settings, redis=redis, api_keys=api_keys)
        app.add_middleware(AuthMiddleware, authenticator=app.state.authenticator)
        app.state.rate_limiter = RateLimiter(redis, namespace=settings.namespace,
                                             rate=settings.rate_limit_per_s,
                                             burst=settings.rate_limit_burst)
    app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                       allow_headers=["*"],
                       expose_headers=["X-Request-ID", "Retry-After", "WWW-Authenticate",
                                       "RateLimit-Limit", "RateLimit-Remaining", REPLAYED_HEADER,
                                       *expose_headers])
    app.add_middleware(RequestContextMiddleware, max_body=max_body)


def make_cache(settings: Settings, *, max_connections: int = 100) -> Redis:
    """The Redis client of an API: a blocking pool, so beyond `max_connections` a request
    waits (up to 10 s) for a connection, where redis-py's default pool raises at once and
    authentication and rate limits, which fail closed, would answer 503 under load."""
    return Redis.from_pool(BlockingConnectionPool.from_url(
        settings.cache_url, max_connections=max_connections, timeout=10))


# -- health and metrics -----------------------------------------------------------------------

Check = Callable[[], Awaitable[None]]


def postgres_check(pool: AsyncConnectionPool) -> Check:
    async def check() -> None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")

    return check


def redis_check(client: Redis) -> Check:
    async def check() -> None:
        await client.ping()

    return check


READY_EXAMPLE = {"status": "ok", "checks": {"postgres": "ok", "kafka": "ok", "redis": "ok"}}
METRICS_EXAMPLE = (
    "# HELP http_requests_total HTTP requests answered\n"
    "# TYPE http_requests_total counter\n"
    'http_requests_total{method="GET",route="/instruments",status="200"} 1027.0\n'
)


def health_router(checks: Mapping[str, Check], *, serve_metrics: bool = True) -> APIRouter:
    """`/livez` answers while the process runs; `/readyz` runs every dependency check;
    `/metrics` only with `serve_metrics` (false when a metrics port serves it)."""
    router = APIRouter(tags=["health"], dependencies=[
        public("for probes and scrapers; nothing in the answers is secret")])

    @router.get("/livez", operation_id="livez", summary="Liveness",
                responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", operation_id="readyz", summary="Readiness of every dependency",
                responses={200: {"content": {"application/json": {"example": READY_EXAMPLE}}},
                           503: PROBLEM_SCHEMA})
    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception:
                # The exception may name hosts, users or paths: for the operator's log only.
                log.exception("readiness check failed", check=name)
                results[name] = "unavailable"
        if all(v == "ok" for v in results.values()):
            return JSONResponse({"status": "ok", "checks": results})
        failing = ", ".join(n for n, v in results.items() if v != "ok")
        return problem_response(request, Problem(503, "not-ready", "Not ready",
                                                 f"unavailable: {failing}", checks=results))

    if not serve_metrics:
        return router

    @router.get("/metrics", operation_id="metrics", summary="Prometheus metrics",
                include_in_schema=True, response_class=PlainTextResponse,
                responses={200: {"content": {"text/plain": {"example": METRICS_EXAMPLE}}}})
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
