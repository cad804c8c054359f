"""Rate limits: Retry-After rounding and which buckets a caller draws from."""

from __future__ import annotations

from kernel.callers import Caller
from kernel.ratelimit import bucket_keys, retry_after_seconds


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_seconds(1000) == 1
    assert retry_after_seconds(1001) == 2
    assert retry_after_seconds(2500) == 3


def test_retry_after_is_never_zero() -> None:
    assert retry_after_seconds(0) == 1
    assert retry_after_seconds(1) == 1
    assert retry_after_seconds(-5) == 1


def test_a_known_caller_draws_from_its_own_bucket_and_its_ip() -> None:
    caller = Caller(identity="caller:alice", ip="10.0.0.1")
    assert bucket_keys("ns", "login", caller) == ["ns:rl:login:caller:alice",
                                                  "ns:rl:login:ip:10.0.0.1"]


def test_an_anonymous_caller_draws_from_its_ip_bucket_only() -> None:
    caller = Caller(identity="ip:10.0.0.1", ip="10.0.0.1")
    assert bucket_keys("", "commands", caller) == ["rl:commands:ip:10.0.0.1"]
