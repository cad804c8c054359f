"""Idempotency-Key for POST and PATCH: a retried request gets the first answer, not a second
effect (draft-ietf-httpapi-idempotency-key-header).

A key is scoped by (namespace, method and path, caller) and remembers a fingerprint of the
request body with the response (status, a subset of headers, body) for `ttl_s`:

- same key, same body: the stored response, with `Idempotent-Replayed: true`;
- same key, another body: 422 `idempotency-key-reused`;
- same key while the first request runs: 409 `idempotency-key-in-progress` (SET NX lock);
- a malformed key: 422 `invalid-idempotency-key`;
- Redis unreachable: 503 `idempotency-unavailable` (fail closed: a retry without the
  guarantee could publish a command twice).

Responses of 5xx and 429 are not stored: the lock is released and a retry runs again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.callers import Caller, caller_of
from kernel.observability import get_logger
from kernel.problems import Problem, problem_response

log = get_logger(__name__)

HEADER = b"idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
# PUT too: a PUT that changes state (a tier's terms) is decided as a command, and a retry
# with the same key must get the first answer, a different body under the key a 422.
METHODS = frozenset({"POST", "PUT", "PATCH"})
KEY_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,199}$")  # printable ASCII, 1-200 chars
STORED_HEADERS = frozenset({"content-type", "location", "etag", "cache-control"})
MAX_STORED_BODY = 1024 * 1024

# Replace the pending record with the outcome (or delete it when ARGV[2] is empty), but only
# if it is still ours: a request that outlived its lock must not clobber its successor.
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


def fingerprint(body: bytes, *, content_type: str = "", query: str = "") -> str:
    """SHA-256 of the request: JSON canonicalised (key order and whitespace do not count)."""
    canonical = b"raw:" + body
    if "json" in content_type.lower():
        with contextlib.suppress(orjson.JSONDecodeError):
            canonical = b"json:" + orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(query.encode() + b"\n" + canonical).hexdigest()


def record_key(namespace: str, *, method: str, path: str, caller: Caller, key: str) -> str:
    """The Redis key of one client key, scoped by operation and caller (fixed length)."""
    scoped = "\n".join((method.upper(), path, caller.identity, key))
    digest = hashlib.sha256(scoped.encode()).hexdigest()
    return f"{namespace}:idem:{digest}" if namespace else f"idem:{digest}"


def storable(status: int) -> bool:
    """Whether an outcome is final: server errors and rate limits may go another way next time."""
    return status < 500 and status != 429


def _header(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]


class IdempotencyMiddleware:
    """Replay the stored response of a repeated POST/PATCH that carries `Idempotency-Key`."""

    def __init__(self, app: ASGIApp, *, redis: Redis, namespace: str, ttl_s: int,
                 lock_ttl_s: int) -> None:
        self.app = app
        self.redis = redis
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.lock_ttl_s = lock_ttl_s
        self._swap = redis.register_script(_SWAP)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        keys = _header(scope, HEADER)
        if not keys:
            await self.app(scope, receive, send)
            return
        if len(keys) > 1 or not KEY_RE.match(keys[0]):
            await self._problem(scope, receive, send, Problem(
                422, "invalid-idempotency-key", "The Idempotency-Key is not valid",
                "send one key of 1 to 200 printable ASCII characters"))
            return
        body = await _read_body(receive)
        content_type = next(iter(_header(scope, b"content-type")), "")
        digest = fingerprint(body, content_type=content_type,
                             query=scope.get("query_string", b"").decode("latin-1"))
        rkey = record_key(self.namespace, method=scope["method"], path=scope["path"],
                          caller=caller_of(scope), key=keys[0])
        pending = orjson.dumps({"state": "pending", "hash": digest,
                                "token": uuid.uuid4().hex})
        try:
            acquired = await self.redis.set(rkey, pending, nx=True, ex=self.lock_ttl_s)
            existing = None if acquired else await self.redis.get(rkey)
        except (RedisError, OSError) as exc:
            log.warning("idempotency store unreachable", error=str(exc))
            await self._problem(scope, receive, send, Problem(
                503, "idempotency-unavailable", "Idempotency keys are unavailable",
                "retry shortly", headers={"Retry-After": "1"}))
            return
        if not acquired:
            await self._answer_existing(scope, receive, send, existing, digest)
            return
        await self._run_and_store(scope, body, receive, send, rkey, pending)

    async def _answer_existing(self, scope: Scope, receive: Receive, send: Send,
                               existing: bytes | str | None, digest: str) -> None:
        record: dict[str, Any] = orjson.loads(existing) if existing else {"state": "pending"}
        if record.get("hash", digest) != digest:
            await self._problem(scope, receive, send, Problem(
                422, "idempotency-key-reused", "The Idempotency-Key was used for another request",
                "a key stands for one request body; use a new key for a new request"))
        elif record["state"] != "done":
            await self._problem(scope, receive, send, Problem(
                409, "idempotency-key-in-progress", "A request with this key is in progress",
                "retry once it has finished", headers={"Retry-After": "1"}))
        else:
            headers = {k: v for k, v in record["headers"]}
            headers[REPLAYED_HEADER] = "true"
            replay = Response(base64.b64decode(record["body"]), status_code=record["status"],
                              headers=headers)
            await replay(scope, receive, send)

    async def _run_and_store(self, scope: Scope, body: bytes, receive: Receive, send: Send,
                             rkey: str, pending: bytes) -> None:
        status = 0
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0
        complete = False
        body_given = False

        async def replay_body() -> Message:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        secret = False

        async def capture(message: Message) -> None:
            nonlocal status, headers, size, complete, secret
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _stored_headers(message.get("headers", ()))
                secret = _no_store(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_STORED_BODY:
                    chunks.append(chunk)
                complete = not message.get("more_body", False)
            await send(message)

        outcome = b""
        try:
            await self.app(scope, replay_body, capture)
            # A `no-store` answer carries a secret (tokens, a new API key): it is never written
            # to Redis; the key is released and a retry runs the request again.
            if complete and storable(status) and size <= MAX_STORED_BODY and not secret:
                outcome = orjson.dumps({
                    "state": "done", "hash": orjson.loads(pending)["hash"], "status": status,
                    "headers": headers, "body": base64.b64encode(b"".join(chunks)).decode(),
                })
        finally:
            try:
                await self._swap(keys=[rkey], args=[pending, outcome, self.ttl_s])
            except (RedisError, OSError) as exc:
                # The lock expires by itself; the response has been sent either way.
                log.warning("idempotency outcome not stored", error=str(exc))

    @staticmethod
    async def _problem(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
        await problem_response(Request(scope), problem)(scope, receive, send)


def _no_store(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"cache-control" and b"no-store" in v.lower() for k, v in raw)


def _stored_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw
            if k.decode("latin-1").lower() in STORED_HEADERS]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
