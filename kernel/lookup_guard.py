"""A per-process guard in front of API-key lookups: unknown keys must not cost a query each.

Two bounded, in-memory structures, no IO (the clock is passed in):

* a token bucket of *failed* lookups per client IP: when it is empty, a key is not looked up
  at all (the request is refused as throttled) until it refills; a valid key never takes a
  token, so its cost is one dictionary read;
* a negative cache of key ids no store knows, for a short while, so the same unknown key sent
  again is refused without a query. Only "no such id" is remembered: a wrong secret for a real
  id is not, or anyone who saw a key's public id could lock its owner out.

Per process, not shared: its job is to protect this process's database pool, and it needs no
round trip to do it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LookupGuard:
    """Decide, before a lookup, whether it may cost a query; learn from each failure."""

    def __init__(self, *, rate: float, burst: int, max_ips: int = 10_000,
                 max_unknown: int = 10_000, unknown_ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_ips = max_ips
        self.max_unknown = max_unknown
        self.unknown_ttl_s = unknown_ttl_s
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ip -> tokens, at
        self._unknown: OrderedDict[str, float] = OrderedDict()  # key id -> until

    def _tokens(self, ip: str, now: float) -> float:
        held = self._buckets.get(ip)
        if held is None:
            return float(self.burst)
        tokens, at = held
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def may_look_up(self, ip: str, key_id: str) -> bool:
        """Whether a lookup of `key_id` for `ip` may reach the store now."""
        now = self.clock()
        until = self._unknown.get(key_id)
        if until is not None:
            if until > now:
                return False
            del self._unknown[key_id]
        return ip not in self._buckets or self._tokens(ip, now) >= 1

    def failed(self, ip: str, key_id: str, *, unknown: bool) -> None:
        """A lookup failed: take a token of `ip`; remember `key_id` when no store knows it."""
        now = self.clock()
        self._buckets[ip] = (max(0.0, self._tokens(ip, now) - 1), now)
        self._buckets.move_to_end(ip)
        while len(self._buckets) > self.max_ips:
            self._buckets.popitem(last=False)
        if unknown:
            self._unknown[key_id] = now + self.unknown_ttl_s
            self._unknown.move_to_end(key_id)
            while len(self._unknown) > self.max_unknown:
                self._unknown.popitem(last=False)
