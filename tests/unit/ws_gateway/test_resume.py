"""Resume: exactly the gap while the history reaches back, a snapshot otherwise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ws_gateway.domain.conflation import Pending
from ws_gateway.domain.frames import TickEntry
from ws_gateway.domain.protocol import Position
from ws_gateway.domain.resume import Gap, HistoryState, Snapshot, plan_resume


def history(seqs: list[int], *, epoch: int = 9, floor: int = 0) -> HistoryState:
    return HistoryState(epoch, floor, [(s, f"m{s}".encode()) for s in seqs])


def test_a_client_gets_exactly_what_came_after_its_sequence() -> None:
    assert plan_resume(Position(9, 2048), history([1024, 2048, 3072, 4096])) == Gap(
        ((3072, b"m3072"), (4096, b"m4096")))


def test_a_client_up_to_date_gets_an_empty_gap() -> None:
    assert plan_resume(Position(9, 4096), history([1024, 4096])) == Gap(())


def test_another_epoch_gets_a_snapshot() -> None:
    assert plan_resume(Position(8, 1024), history([1024, 2048])) == Snapshot("epoch-changed")


def test_a_sequence_below_the_floor_gets_a_snapshot() -> None:
    state = history([5120, 6144], floor=4096)
    assert plan_resume(Position(9, 3072), state) == Snapshot("history-exceeded")
    assert plan_resume(Position(9, 4096), state) == Gap(((5120, b"m5120"), (6144, b"m6144")))


def test_no_history_gets_a_snapshot() -> None:
    assert plan_resume(Position(9, 1), HistoryState(0, 0, [])) == Snapshot("no-history")


@given(st.lists(st.integers(0, 10_000), unique=True, max_size=40), st.integers(0, 10_000))
def test_the_gap_has_no_duplicates_and_nothing_at_or_before_the_position(
        seqs: list[int], last: int) -> None:
    plan = plan_resume(Position(9, last), history(sorted(seqs)))
    assert isinstance(plan, Gap)
    got = [s for s, _ in plan.messages]
    assert got == sorted(s for s in seqs if s > last)


def tick(instrument: int, seq: int) -> TickEntry:
    return TickEntry("market:X", instrument, 1, seq, 0, float(seq), 1.0)


def test_a_slow_client_keeps_the_latest_tick_per_instrument() -> None:
    pending = Pending(limit=3)
    assert pending.add_ticks([tick(1, 1), tick(2, 2), tick(1, 3)]) == 1
    assert pending.add_ticks([tick(1, 4)]) == 1
    ticks, messages = pending.take()
    assert [(t.instrument_id, t.seq) for t in ticks] == [(1, 4), (2, 2)]
    assert messages == [] and len(pending) == 0 and pending.dropped == 2


def test_other_messages_queue_up_to_the_limit() -> None:
    pending = Pending(limit=2)
    assert pending.offer(b"a") and pending.offer(b"b")
    assert not pending.offer(b"c")
    assert pending.take() == ([], [b"a", b"b"])
