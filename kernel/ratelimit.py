"""Token buckets in Redis, per caller and per IP, as a FastAPI dependency.

`rate_limited(name, rate, burst)` makes a dependency: every call takes one token from the
caller's bucket and the IP's bucket of `name` (both, atomically, in one Lua script on
Redis's clock); when either is empty the answer is 429 `rate-limited` with `Retry-After`.

When Redis is unreachable, `fail_open=True` (the default, for reads and ordinary commands)
lets the request through with a logged warning; `fail_open=False` (for login, register and
other abuse targets) answers 503 `rate-limit-unavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kernel.callers import Caller, caller_of
from kernel.observability import get_logger
from kernel.problems import Problem

log = get_logger(__name__)

# request.state attribute whose headers RequestContextMiddleware adds to any answer.
RESPONSE_HEADERS_KEY = "response_headers"

# KEYS: the buckets; ARGV: rate (tokens/s) and burst of each, in turn (rate1, burst1, ...).
# Returns {allowed, remaining, wait_ms}. A token is taken from every bucket or from none.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = {}
local allowed = 1
local wait_ms = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tk = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tk = math.min(burst, tk + math.max(0, now - ts) * rate / 1000)
  tokens[i] = tk
  if tk < 1 then
    allowed = 0
    wait_ms = math.max(wait_ms, math.ceil((1 - tk) * 1000 / rate))
  end
end
local remaining = -1
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tk = tokens[i]
  if allowed == 1 then tk = tk - 1 end
  if remaining < 0 or tk < remaining then remaining = tk end
  redis.call('HSET', key, 'tokens', tostring(tk), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
return {allowed, math.floor(remaining), wait_ms}
"""

# KEYS: buckets a token was taken from; ARGV: their bursts. Put one token back in each
# bucket that still exists (a missing bucket is full already).
_GIVE_BACK = """
for i, key in ipairs(KEYS) do
  local tk = tonumber(redis.call('HGET', key, 'tokens'))
  if tk then
    redis.call('HSET', key, 'tokens', tostring(math.min(tonumber(ARGV[i]), tk + 1)))
  end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_ms: int


def retry_after_seconds(wait_ms: int) -> int:
    """`Retry-After` in whole seconds, rounded up and never 0 (0 invites a hot retry loop)."""
    return max(1, math.ceil(wait_ms / 1000))


def bucket_keys(namespace: str, name: str, caller: Caller) -> list[str]:
    """The caller's bucket and the IP's; one when the caller is known only by its IP."""
    prefix = f"{namespace}:rl:{name}" if namespace else f"rl:{name}"
    keys = [f"{prefix}:ip:{caller.ip}"]
    if not caller.anonymous:
        keys.insert(0, f"{prefix}:{caller.identity}")
    return keys


class RateLimiter:
    """Takes tokens from Redis buckets; holds the default rate of the app."""

    def __init__(self, redis: Redis, *, namespace: str, rate: float, burst: int) -> None:
        self.namespace = namespace
        self.rate = rate
        self.burst = burst
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def key(self, name: str, *parts: str) -> str:
        """The Redis key of bucket `name` for `parts` (an identity, an IP, ...)."""
        prefix = f"{self.namespace}:rl:{name}" if self.namespace else f"rl:{name}"
        return ":".join((prefix, *parts))

    async def take_many(self, buckets: list[tuple[str, float, int]]) -> Decision:
        """Take a token from every bucket (key, rate, burst) or from none, atomically."""
        args: list[str | int] = []
        for _, rate, burst in buckets:
            args += [repr(float(rate)), burst]
        raw = await self._take(keys=[k for k, _, _ in buckets], args=args)
        allowed, remaining, wait_ms = (int(v) for v in raw)
        return Decision(allowed=bool(allowed), remaining=max(0, remaining),
                        retry_after_ms=wait_ms)

    async def give_back(self, buckets: list[tuple[str, int]]) -> None:
        """Return a token taken by `take_many` to each bucket (key, burst)."""
        await self._give_back(keys=[k for k, _ in buckets], args=[b for _, b in buckets])

    async def take(self, name: str, caller: Caller, *, rate: float, burst: int) -> Decision:
        """Take a token of bucket `name` from the caller's bucket and the IP's."""
        return await self.take_many([(key, rate, burst)
                                     for key in bucket_keys(self.namespace, name, caller)])


def settings_limited(name: str, rate: str, burst: str, *,
                     fail_open: bool = True) -> Callable[[Request], Awaitable[None]]:
    """Like `rate_limited`, with the rate and burst read from the app's settings attributes
    `rate` and `burst` at request time (so an operator tunes them by environment)."""

    async def dependency(request: Request) -> None:
        settings = request.app.state.settings
        await rate_limited(name, getattr(settings, rate), getattr(settings, burst),
                           fail_open=fail_open)(request)

    return dependency


def rate_limited(name: str, rate: float | None = None, burst: int | None = None, *,
                 fail_open: bool = True) -> Callable[[Request], Awaitable[None]]:
    """A dependency taking a token of bucket `name`; rate and burst default to the app's."""

    async def dependency(request: Request) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            raise RuntimeError("rate_limited needs install_conventions(..., redis=...)")
        r = rate if rate is not None else limiter.rate
        b = burst if burst is not None else limiter.burst
        try:
            decision = await limiter.take(name, caller_of(request.scope), rate=r, burst=b)
        except (RedisError, OSError) as exc:
            if fail_open:
                log.warning("rate limit skipped: Redis unreachable", bucket=name, error=str(exc))
                return
            raise Problem(503, "rate-limit-unavailable", "Rate limiting is unavailable",
                          "retry shortly", headers={"Retry-After": "1"}) from None
        limits = {"RateLimit-Limit": str(b), "RateLimit-Remaining": str(decision.remaining)}
        if not decision.allowed:
            seconds = retry_after_seconds(decision.retry_after_ms)
            raise Problem(429, "rate-limited", "Too many requests",
                          f"retry in {seconds} s", retry_after=seconds,
                          headers={**limits, "Retry-After": str(seconds)})
        # On request.state, not the injected Response: routes that return their own
        # Response (202s, the simulator) would drop headers set there.
        earlier: dict[str, str] = getattr(request.state, RESPONSE_HEADERS_KEY, {})
        setattr(request.state, RESPONSE_HEADERS_KEY, {**earlier, **limits})

    return dependency
