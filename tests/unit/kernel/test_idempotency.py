"""Idempotency-Key: body fingerprints, key scoping and which outcomes are kept."""

from __future__ import annotations

from kernel.auth import SCOPE_KEY, Principal
from kernel.callers import Caller, caller_of
from kernel.idempotency import KEY_RE, fingerprint, record_key, storable

ALICE = Caller(identity="caller:alice", ip="10.0.0.1")
BOB = Caller(identity="caller:bob", ip="10.0.0.1")


def test_fingerprint_of_json_ignores_key_order_and_whitespace() -> None:
    a = fingerprint(b'{"a": 1, "b": [1, 2]}', content_type="application/json")
    b = fingerprint(b'{"b":[1,2],"a":1}', content_type="application/json; charset=utf-8")
    assert a == b
    assert len(a) == 64


def test_fingerprint_differs_when_a_value_differs() -> None:
    a = fingerprint(b'{"a": 1}', content_type="application/json")
    assert a != fingerprint(b'{"a": 2}', content_type="application/json")


def test_fingerprint_of_invalid_json_or_other_types_is_of_the_raw_bytes() -> None:
    assert fingerprint(b"{not json", content_type="application/json") == fingerprint(
        b"{not json", content_type="text/plain")
    assert fingerprint(b'{"a":1}', content_type="text/plain") != fingerprint(
        b'{"a": 1}', content_type="text/plain")


def test_fingerprint_counts_the_query_string() -> None:
    assert fingerprint(b"", query="x=1") != fingerprint(b"", query="x=2")


def test_record_key_is_scoped_by_namespace_operation_and_caller() -> None:
    base = record_key("ns", method="POST", path="/instruments", caller=ALICE, key="k1")
    assert base.startswith("ns:idem:")
    assert base == record_key("ns", method="post", path="/instruments", caller=ALICE, key="k1")
    others = {
        record_key("other", method="POST", path="/instruments", caller=ALICE, key="k1"),
        record_key("ns", method="PATCH", path="/instruments", caller=ALICE, key="k1"),
        record_key("ns", method="POST", path="/instruments/X/halt", caller=ALICE, key="k1"),
        record_key("ns", method="POST", path="/instruments", caller=BOB, key="k1"),
        record_key("ns", method="POST", path="/instruments", caller=ALICE, key="k2"),
    }
    assert base not in others
    assert len(others) == 5
    assert record_key("", method="POST", path="/", caller=ALICE, key="k").startswith("idem:")


def test_key_format() -> None:
    assert KEY_RE.match("register-eth-1")
    assert KEY_RE.match("a" * 200)
    assert not KEY_RE.match("")
    assert not KEY_RE.match(" leading-space")
    assert not KEY_RE.match("a" * 201)
    assert not KEY_RE.match("tab\there")


def test_only_final_outcomes_are_stored() -> None:
    assert storable(201) and storable(202) and storable(409) and storable(422)
    assert not storable(429)
    assert not storable(500) and not storable(503)


def test_caller_is_the_proven_user_else_the_ip() -> None:
    alice = Principal(user_id="alice-id", role="trader", via="token", scopes=frozenset())
    scope = {"client": ("1.2.3.4", 5), "headers": [], SCOPE_KEY: alice}
    assert caller_of(scope) == Caller(identity="user:alice-id", ip="1.2.3.4")
    assert not caller_of(scope).anonymous
    # A credential that failed to verify names nobody: the IP bucket.
    refused = {"client": ("1.2.3.4", 5), "headers": [(b"x-caller", b"alice")],
               SCOPE_KEY: "bad-signature"}
    assert caller_of(refused) == Caller(identity="ip:1.2.3.4", ip="1.2.3.4")
    assert caller_of(refused).anonymous
    assert caller_of({"headers": []}).ip == "unknown"
