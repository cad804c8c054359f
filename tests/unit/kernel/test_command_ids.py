"""A command id derived from an Idempotency-Key: one per caller, scope and body, never shared."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from kernel.commands import command_id_for

ALICE = "5b0c6a8e-0000-4000-8000-00000000a11c"
BOB = "5b0c6a8e-0000-4000-8000-000000000b0b"


class Body(BaseModel):
    tier_id: str
    currency: str | None = None


def test_a_retry_by_the_same_caller_with_the_same_body_is_the_same_command() -> None:
    first = command_id_for("key-1", caller=ALICE, scope="purchase", body=Body(tier_id="s-10k"))
    retry = command_id_for("key-1", caller=ALICE, scope="purchase", body=Body(tier_id="s-10k"))
    assert first == retry
    assert first.version == 5


def test_the_same_key_from_two_callers_is_two_commands() -> None:
    body = Body(tier_id="s-10k")
    assert command_id_for("key-1", caller=ALICE, scope="purchase", body=body) != \
        command_id_for("key-1", caller=BOB, scope="purchase", body=body)


def test_the_same_key_with_two_bodies_is_two_commands() -> None:
    assert command_id_for("key-1", caller=ALICE, scope="purchase",
                          body=Body(tier_id="s-10k")) != \
        command_id_for("key-1", caller=ALICE, scope="purchase", body=Body(tier_id="s-50k"))
    assert command_id_for("key-1", caller=ALICE, scope="purchase",
                          body=Body(tier_id="s-10k")) != \
        command_id_for("key-1", caller=ALICE, scope="purchase",
                       body=Body(tier_id="s-10k", currency="EUR"))


def test_the_same_key_on_two_routes_or_targets_is_two_commands() -> None:
    ids = {command_id_for("key-1", caller=ALICE, scope=scope, body=None)
           for scope in ("halt:BTC-USD", "halt:ETH-USD", "resume:BTC-USD")}
    assert len(ids) == 3


def test_a_body_is_the_same_body_whatever_its_key_order() -> None:
    assert command_id_for("k", caller=ALICE, scope="s", body={"a": 1, "b": [1, 2]}) == \
        command_id_for("k", caller=ALICE, scope="s", body={"b": [1, 2], "a": 1})
    assert command_id_for("k", caller=ALICE, scope="s", body=Body(tier_id="x")) == \
        command_id_for("k", caller=ALICE, scope="s", body={"currency": None, "tier_id": "x"})


def test_fields_cannot_be_shifted_between_caller_scope_and_key() -> None:
    """No part spills into the next: scope "b\\nx" + key "c" is not scope "b" + key "x\\nc"."""
    assert command_id_for("c", caller="a", scope="b\nx", body=None) != \
        command_id_for("x\nc", caller="a", scope="b", body=None)


def test_without_a_key_every_request_is_a_new_command() -> None:
    first = command_id_for(None, caller=ALICE, scope="purchase", body=Body(tier_id="s-10k"))
    second = command_id_for(None, caller=ALICE, scope="purchase", body=Body(tier_id="s-10k"))
    assert first != second and isinstance(first, uuid.UUID) and first.version == 4
