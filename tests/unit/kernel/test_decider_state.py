"""Decider state: snapshot items round-trip; old outcomes are forgotten; chunks stay small."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from core.domain.instruments import Instrument, InstrumentAggregate
from kernel.decider_state import (
    Outcome,
    PartitionState,
    Versioned,
    dump_items,
    load_items,
    outcome_of,
)
from kernel.snapshots import chunk
from schemas import default_registry
from schemas.envelope import make_event
from schemas.identity import UserRegistered, UserRoleChanged
from schemas.instrument import InstrumentSpec

AGG = InstrumentAggregate()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = InstrumentSpec(symbol="ETH-USD", venue="simulator", asset_class="crypto",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), quote_currency="USD")


def sample_state() -> PartitionState[Instrument]:
    state: PartitionState[Instrument] = PartitionState(next_event_offset=42)
    state.aggregates["ETH-USD"] = Versioned(3, Instrument("ETH-USD", SPEC, "halted", "outage"))
    state.aggregates["NEW"] = Versioned(1, Instrument("NEW"))
    state.decided[uuid.UUID(int=1)] = Outcome("accepted", None, None,
                                              ({"type": "instrument.halted"},), NOW, "u-1")
    state.decided[uuid.UUID(int=2)] = Outcome("rejected", "nothing-to-change", "same", (),
                                              NOW - timedelta(days=8))
    return state


def test_snapshot_items_round_trip_through_json() -> None:
    state = sample_state()
    items = orjson.loads(orjson.dumps(dump_items(state, AGG)))
    restored = load_items(items, AGG, next_event_offset=42)
    assert restored.aggregates == state.aggregates
    assert restored.decided == state.decided
    assert restored.next_event_offset == 42


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    state = sample_state()
    assert state.forget_decided_before(NOW - timedelta(days=7)) == 1
    assert list(state.decided) == [uuid.UUID(int=1)]


def test_chunks_respect_the_size_limit_and_keep_every_item() -> None:
    items = [["a", f"S{i}", i, {"pad": "x" * 100}] for i in range(1000)]
    groups = chunk(items, limit=10_000)
    assert len(groups) > 10
    assert all(sum(len(d) for d in g) <= 10_000 for g in groups)
    assert [orjson.loads(d) for g in groups for d in g] == items
    assert chunk([]) == []


# Outcomes held within a byte budget -----------------------------------------------------------


def _large(i: int, kib: int = 16) -> Outcome:
    return Outcome("accepted", None, None, ({"type": "instrument.halted", "sequence": i,
                                             "payload": {"blob": "x" * (kib * 1024)}},), NOW)


def test_large_outcomes_keep_their_ids_but_only_a_budget_of_events() -> None:
    state: PartitionState[Instrument] = PartitionState()
    budget = 64 * 1024
    for i in range(1, 1001):
        state.remember(uuid.UUID(int=i), _large(i), budget=budget)
        assert state.decided_bytes <= budget
    # Every command id is still known: a redelivery is still a duplicate...
    assert len(state.decided) == 1000
    # ...but only the newest outcomes keep their events.
    with_events = [i for i in range(1, 1001) if state.decided[uuid.UUID(int=i)].events]
    assert with_events == list(range(1001 - len(with_events), 1001))
    assert 1 <= len(with_events) <= 4
    assert state.decided[uuid.UUID(int=1)].status == "accepted"


def test_forgetting_old_outcomes_gives_their_bytes_back() -> None:
    state: PartitionState[Instrument] = PartitionState()
    old = Outcome("accepted", None, None, ({"blob": "y" * 1000},), NOW - timedelta(days=8))
    state.remember(uuid.UUID(int=1), old)
    state.remember(uuid.UUID(int=2), _large(2, kib=1))
    state.forget_decided_before(NOW - timedelta(days=7))
    assert state.decided_bytes == len(orjson.dumps(_large(2, kib=1).events))


def test_a_loaded_snapshot_counts_the_bytes_of_its_outcomes() -> None:
    items = orjson.loads(orjson.dumps(dump_items(sample_state(), AGG)))
    restored = load_items(items, AGG, next_event_offset=42)
    assert restored.decided_bytes == len(orjson.dumps(({"type": "instrument.halted"},)))


def test_an_old_snapshot_outcome_without_an_actor_loads_as_nobodys() -> None:
    old = {"status": "rejected", "reason": "x", "detail": "", "events": [],
           "decided_at": NOW.isoformat()}
    assert Outcome.load(old).actor is None


def _event(payload: object, i: int, actor: str | None) -> object:
    return make_event(payload, aggregate_id="u-1", sequence=i + 1,  # type: ignore[arg-type]
                      occurred_at=NOW, correlation_id=uuid.UUID(int=9),
                      causation_id=uuid.UUID(int=9), event_id=uuid.UUID(int=i), actor=actor)


def test_an_outcome_names_its_sender_and_holds_only_redacted_events() -> None:
    registered = UserRegistered(email="p0:ada@example.com", display_name="s1:bm9uY2U:Y2lwaGVy",
                                role="trader", credential_id=uuid.UUID(int=7),
                                legacy_password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNh")
    changed = UserRoleChanged(role="admin", previous_role="trader", changed_by="admin-1")
    events = [_event(registered, 0, "u-1"), _event(changed, 1, "u-1")]
    outcome = outcome_of(events, "user.command-rejected",  # type: ignore[arg-type]
                         redact=default_registry().redacted)
    assert outcome.actor == "u-1"
    assert outcome.events[0]["payload"] == {"role": "trader",
                                            "credential_id": str(uuid.UUID(int=7))}
    assert outcome.events[1]["payload"]["changed_by"] == "admin-1"
