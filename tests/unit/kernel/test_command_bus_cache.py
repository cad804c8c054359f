"""The API's remembered command replies are bounded by bytes, not only by count."""

from __future__ import annotations

import uuid

from kernel.commands import CommandBus
from kernel.settings import Settings
from schemas.codec import encode
from schemas.replies import CommandReply

BUDGET = 64 * 1024


def large_reply(i: int, *, kib: int = 16, duplicate: bool = False) -> tuple[CommandReply, int]:
    reply = CommandReply(command_id=uuid.UUID(int=i), aggregate_id=f"agg-{i}", status="accepted",
                         events=({"payload": {"blob": "x" * (kib * 1024)}, "sequence": 1},),
                         duplicate=duplicate)
    return reply, len(encode(reply))


def bus() -> CommandBus:
    return CommandBus(Settings(command_reply_cache_bytes=BUDGET))


def test_large_replies_never_hold_more_than_the_byte_budget() -> None:
    b = bus()
    for i in range(1, 1001):
        reply, size = large_reply(i)
        b.remember_reply(reply, size=size)
        assert b.remembered_bytes <= BUDGET
    assert b.recent(uuid.UUID(int=1000)) is not None  # the newest is kept
    assert b.recent(uuid.UUID(int=1)) is None  # the oldest went first
    kept = [i for i in range(1, 1001) if b.recent(uuid.UUID(int=i)) is not None]
    assert kept == list(range(1001 - len(kept), 1001)) and 2 <= len(kept) <= 4


def test_a_reply_larger_than_the_whole_budget_is_not_kept() -> None:
    b = bus()
    reply, size = large_reply(1, kib=100)
    b.remember_reply(reply, size=size)
    assert b.recent(reply.command_id) is None and b.remembered_bytes == 0


def test_a_duplicate_reply_replacing_another_duplicate_is_counted_once() -> None:
    b = bus()
    first, size = large_reply(1, duplicate=True)
    b.remember_reply(first, size=size)
    second, size2 = large_reply(1, duplicate=True)
    b.remember_reply(second, size=size2)
    assert b.remembered_bytes == size2
    # The first non-duplicate decision is kept, whatever comes after it.
    decided, size3 = large_reply(1)
    b.remember_reply(decided, size=size3)
    b.remember_reply(second, size=size2)
    assert b.recent(decided.command_id) == decided and b.remembered_bytes == size3
