"""Exponential backoff with full jitter (the random source is passed in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before attempt n: uniform in [0, min(cap, base * 2**n)]."""

    base: float = 0.5
    cap: float = 30.0

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        return rng() * self.ceiling(attempt)
