"""The instruments read model's fast path against its pydantic path.

The fast path (`core.adapters.instruments_projection.FAST`, msgspec Structs folded by
`fold_batch` without a pydantic model) must be an exact stand-in: every record it takes is
one pydantic takes, folding to the very same rows (values, types, decimal scale, JSON text);
every record pydantic refuses, it refuses too, so the runner's decode (`record_decoder`) refuses
it with today's `DecodeError`, reason and message; and a batch folds alike whatever mix of
fast and pydantic events it holds and wherever the batches are cut.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.adapters.instruments_projection import FAST, Row, fold, fold_batch
from kernel.log import LogRecord
from kernel.projection import Applied, Event, record_decoder
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import EventPayload, make_event
from schemas.errors import DecodeError
from schemas.fastcodec import Fallback, FastEvent
from schemas.instrument import (
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
    TradingHours,
)
from tests.integration.tapes import event_tape

REGISTRY = default_registry()
DECODE = record_decoder(REGISTRY, FAST)  # what the runner decodes a record with


def decode_for(data: bytes) -> Event:
    return DECODE(LogRecord("instrument.events", 0, 0, None, data, (), 0))
T0 = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
HOURS = '{"sessions":[],"timezone":"UTC"}'
BASE = Row("BTC-USD", "simulator", "crypto", Decimal("0.01"), Decimal("1"), "USD", HOURS, "",
           "active", None, 1, T0, T0)


def exact(rows: dict[str, Row]) -> dict[str, tuple[str, ...]]:
    """Rows compared by repr: Decimal('0.010') is == Decimal('0.01'), but not stored alike."""
    return {k: tuple(repr(v) for v in row) for k, row in rows.items()}


def slow(data: bytes) -> tuple[str, Any]:
    """The pydantic path alone: ("ok", Applied) or ("refused", (reason, message))."""
    try:
        env = decode_event(data)
        return "ok", Applied(env, REGISTRY.event_payload(env))
    except DecodeError as exc:
        return "refused", (exc.reason, str(exc))


def fold_alone(rows: dict[str, Row], events: Sequence[Event]) -> dict[str, Row]:
    """The reference: the per-event pydantic `fold`, on `Applied` only."""
    state: dict[str, Row | None] = dict(rows)
    changed: dict[str, Row] = {}
    for applied in events:
        assert isinstance(applied, Applied)
        key = applied.envelope.aggregate_id
        before = state.get(key)
        after = fold(before, applied)
        if after is not None and after is not before:
            state[key] = changed[key] = after
    return changed


def check_same(data: bytes) -> str:
    """Decode `data` both ways and, when both take it, fold it both ways onto no row and onto
    a row; returns "fast", "fallback" or "refused"."""
    kind, result = slow(data)
    try:
        fast: FastEvent | None = FAST.decode(data)
    except Fallback:
        fast = None
    if kind == "refused":
        assert fast is None, "the fast path took a record pydantic refuses"
        with pytest.raises(DecodeError) as caught:
            decode_for(data)
        assert (caught.value.reason, str(caught.value)) == result
        return "refused"
    assert isinstance(decode_for(data), Applied if fast is None else FastEvent)
    if fast is None:
        return "fallback"
    key = result.envelope.aggregate_id
    for rows in ({}, {key: BASE._replace(symbol=key)}):
        want = exact(fold_alone(rows, [result]))
        assert exact(fold_batch(rows, [fast])) == want
        assert exact(fold_batch(rows, [result])) == want
    return "fast"


# Records as a producer might write them, valid or not --------------------------------------

UUIDS = st.uuids().map(str) | st.sampled_from(["not-a-uuid", uuid.UUID(int=7).hex, ""])
TEXT = st.text(max_size=12) | st.sampled_from(
    ["a" * 200, "a" * 201, "ü" * 200, "é" * 201, "\x00", "\ud800", "tab\there", "line\n", ""])
SYMBOLS = st.sampled_from(["BTC-USD", "EUR/USD", "X1", "A" * 40, "A" * 41, "btc", "BTC\n",
                           "-X", "", "ÄB"]) | TEXT
VENUES = st.sampled_from(["simulator", "binance", "b_1-x", "Binance", "x\n", "", "a" * 33])
CURRENCIES = st.sampled_from(["USD", "USDT", "USDCX", "US", "usd", "USD\n", "USDCXY"])
DECIMALS = st.sampled_from([
    "0.01", "0.010", "1", "10", "0.001", "1234567890123456.5", "0.000000000001",
    "1.000000000000", "1.0000000000000", "0.0000000000001", "0", "0.0", "0.000", "-1",
    "1e-2", "1E2", "01.5", ".5", "5.", " 1", "1 ", "+1", "NaN", "Infinity", "", "1_000",
    "12345678901234567", "1234567890123456789012345678.5",
]) | st.floats(allow_nan=True) | st.integers(min_value=-2, max_value=10**30) | st.none()
TIMES = st.sampled_from(["09:30", "09:30:00", "00:00", "23:59:59", "09:30:00.5",
                         "09:30:00.123456", "09:30:00.1234567", "24:00", "9:30", "09:30Z",
                         "09:30:00+01:00", "09:60", "", "0930"])
SESSIONS = st.fixed_dictionaries(
    {"days": st.lists(st.integers(min_value=-1, max_value=7), max_size=8)
     | st.sampled_from([[0], [0, 1, 2, 3, 4], "mon"]),
     "open": TIMES, "close": TIMES},
    optional={"extra": st.just(1)})
TRADING_HOURS = st.fixed_dictionaries(
    {}, optional={"timezone": st.sampled_from(["UTC", "America/New_York", "x" * 64, "x" * 65])
                  | TEXT | st.integers(),
                  "sessions": st.lists(SESSIONS, max_size=3) | st.just([{"days": [0],
                                                                          "open": "09:30",
                                                                          "close": "17:00"}] * 15),
                  "extra": st.just(True)}) | st.none() | st.just("UTC")


GOOD_TIMES = st.sampled_from(["09:30", "09:30:00", "00:00", "23:59:59", "09:30:00.5",
                              "17:00:00.123456"])
GOOD_HOURS = st.fixed_dictionaries({}, optional={
    "timezone": st.sampled_from(["UTC", "America/New_York", "x" * 64, "ü", ""]),
    "sessions": st.lists(st.fixed_dictionaries({
        "days": st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=7),
        "open": GOOD_TIMES, "close": GOOD_TIMES}), max_size=3)})
GOOD_SPEC = {"symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto",
             "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"}
COSTS = st.sampled_from([
    "0", "0.0", "0.010", "0.1", "0.1000", "0.10000000000001", "0.100000000000", "0.5", "1",
    "999999.999999999999", "1000000", "1000000.5", "1e-3", "-0", "-0.01", "00.1", "NaN"])
TICKS = st.sampled_from([0, 1, 1000, 1001, -1, "2", 2.0, True, None])
ODD_SPEC_VALUES = {"symbol": SYMBOLS, "venue": VENUES,
                   "asset_class": st.sampled_from(["fx", "equity", "bond", "", None]),
                   "tick_size": DECIMALS, "lot_size": DECIMALS, "quote_currency": CURRENCIES,
                   "trading_hours": TRADING_HOURS, "description": TEXT | st.none(),
                   "commission_per_unit": COSTS | DECIMALS, "commission_rate": COSTS | DECIMALS,
                   "slippage_ticks": TICKS, "extra": st.just(1)}


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec (optional fields or not), with at most one field odd or missing."""
    spec: dict[str, Any] = dict(GOOD_SPEC)
    if draw(st.booleans()):
        spec["trading_hours"] = draw(GOOD_HOURS)
    if draw(st.booleans()):
        spec["description"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        spec["tick_size"] = draw(st.sampled_from(["0.010", "5", "1234567890123456.5",
                                                  "0.000000000001", "1.000000000000"]))
    if draw(st.booleans()):
        spec["commission_per_unit"] = draw(st.sampled_from(["0", "0.25", "12.000"]))
        spec["commission_rate"] = draw(st.sampled_from(["0", "0.0005", "0.1"]))
        spec["slippage_ticks"] = draw(st.sampled_from([0, 3]))
    field = draw(st.sampled_from([None, "missing", *ODD_SPEC_VALUES]))
    if field == "missing":
        del spec[draw(st.sampled_from(list(GOOD_SPEC)))]
    elif field is not None:
        spec[field] = draw(ODD_SPEC_VALUES[field])
    return spec


SPECS = specs()
CHANGES = st.fixed_dictionaries({}, optional={
    "venue": VENUES | st.none(), "tick_size": DECIMALS | st.just("0.5"),
    "lot_size": DECIMALS | st.just("2"), "quote_currency": CURRENCIES | st.none(),
    "trading_hours": TRADING_HOURS | GOOD_HOURS, "description": TEXT | st.none(),
    "commission_per_unit": COSTS | st.none(), "commission_rate": COSTS | st.none(),
    "slippage_ticks": TICKS, "status": st.just("halted")})
RESOLVED_AT = st.sampled_from(["2026-11-04T03:00:00Z", "2026-11-04T03:00:00.25+01:00",
                               "2026-02-30T03:00:00Z", "2026-11-04 03:00:00Z", "yesterday",
                               "2026-11-04T03:00:00"])
REASONS = st.sampled_from(["instrument-already-registered", "instrument-not-halted",
                           "nothing-to-change", "exploded", ""])
PAYLOADS = st.one_of(
    st.tuples(st.just("instrument.registered"),
              st.fixed_dictionaries({"spec": SPECS}) | st.just({})),
    st.tuples(st.just("instrument.updated"), st.fixed_dictionaries({"changes": CHANGES})),
    st.tuples(st.just("instrument.halted"),
              st.fixed_dictionaries({"reason": TEXT | st.integers() | st.none()})
              | st.just({})),
    st.tuples(st.just("instrument.resumed"), st.just({}) | st.just({"reason": "x"})),
    st.tuples(st.just("instrument.resolved"), st.fixed_dictionaries(
        {"outcome": st.sampled_from([0, 1, 2, "1", True, 1.0, None]),
         "source": st.sampled_from(["admin", "polymarket", "kalshi", "binance", ""]),
         "resolved_at": RESOLVED_AT}, optional={"extra": st.just(1)})),
    st.tuples(st.just("instrument.command-rejected"), st.fixed_dictionaries(
        {"command_id": UUIDS, "command_type": TEXT | st.integers(),
         "reason": REASONS}, optional={"detail": TEXT | st.none()})),
    st.tuples(st.sampled_from(["instrument.exploded", "tier.created", ""]), st.just({})),
)
ENVELOPE_CHANGES = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from([0, 2, 99, "1", 1.0, True, None]),
    "sequence": st.sampled_from([0, -1, 2**63, 2**70, "3", 3.0, None]),
    "occurred_at": st.sampled_from([
        "2026-12-05T06:30:00.123456+05:30", "2026-12-05T06:30:00.1234567Z",
        "2026-02-30T06:30:00Z", "2026-12-05 06:30:00Z", "2026-12-05T06:30:00",
        "2026-12-05T06:30:00-00:00", "0001-01-01T00:00:00+01:00", "2026-12-05T24:00:00Z"]),
    "aggregate_id": st.sampled_from(["", "x" * 200, "x" * 201, "ETH-USD"]),
    "actor": st.sampled_from(["admin", "a" * 201, 5]),
    "causation_id": UUIDS,
    "event_id": UUIDS,
})


def envelope(type_: str, payload: Any, **changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "type": type_, "version": 1, "aggregate_id": "BTC-USD",
        "sequence": 3, "occurred_at": "2026-12-05T06:30:00Z",
        "correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": None,
        "payload": payload}
    doc.update(changes)
    return json.dumps(doc).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAYLOADS, ENVELOPE_CHANGES)
def test_any_instrument_event_is_taken_alike_or_refused_alike(
        typed: tuple[str, Any], changes: dict[str, Any]) -> None:
    type_, payload = typed
    check_same(envelope(type_, payload, **changes))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAYLOADS)
def test_well_formed_envelopes_of_any_payload_are_taken_alike(typed: tuple[str, Any]) -> None:
    check_same(envelope(*typed))


def test_what_the_decider_writes_takes_the_fast_path() -> None:
    hours = TradingHours.model_validate({"timezone": "America/New_York", "sessions": [
        {"days": [0, 1, 2, 3, 4], "open": "09:30", "close": "16:00:00.25"}]})
    spec = InstrumentSpec.model_validate({
        "symbol": "EUR/USD", "venue": "simulator", "asset_class": "fx",
        "tick_size": "0.00010", "lot_size": "1000", "quote_currency": "USD",
        "trading_hours": hours, "description": "euro — dollar"})
    payloads: list[EventPayload] = [
        InstrumentRegistered(spec=spec),
        InstrumentUpdated(changes=InstrumentChanges(tick_size=Decimal("0.5"), venue="binance")),
        InstrumentUpdated(changes=InstrumentChanges(trading_hours=TradingHours(),
                                                    description="")),
        InstrumentHalted(reason="maintenance"),
        InstrumentResumed(),
        InstrumentCommandRejected(command_id=uuid.uuid4(), command_type="instrument.halt",
                                  reason="instrument-not-halted"),
        InstrumentUpdated(changes=InstrumentChanges(commission_per_unit=Decimal("0.25"),
                                                    commission_rate=Decimal("0.0005"),
                                                    slippage_ticks=2)),
        InstrumentResolved(outcome=1, source="polymarket", resolved_at=T0),
    ]
    for n, payload in enumerate(payloads, start=1):
        data = encode(make_event(payload, aggregate_id="EUR/USD", sequence=n,
                                 occurred_at=T0 + timedelta(seconds=n),
                                 correlation_id=uuid.uuid4(), causation_id=None,
                                 event_id=uuid.uuid4()))
        assert check_same(data) == "fast", payload
    for _, data in event_tape(20, 6).records:
        assert check_same(data) == "fast"


# Batches: any mix, any cut ------------------------------------------------------------------


def streams(seed: int, symbols: int = 12, per_symbol: int = 9) -> list[bytes]:
    """Per symbol: register, then updates of every attribute, halts, resumes, rejections, a
    second registration, and replays (a sequence at or below the row's), interleaved."""
    rng = random.Random(seed)
    out: list[list[bytes]] = []
    for s in range(symbols):
        symbol = f"S{s:03d}"
        events: list[bytes] = []
        seq = 0
        for n in range(per_symbol):
            pick = rng.random()
            payload: EventPayload
            if n == 0 or pick < 0.05:
                payload = InstrumentRegistered(spec=InstrumentSpec.model_validate({
                    "symbol": symbol, "venue": "simulator", "asset_class": "crypto",
                    "tick_size": rng.choice(["0.01", "0.010", "5"]), "lot_size": "0.001",
                    "quote_currency": "USD"}))
            elif pick < 0.1:
                payload = InstrumentResolved(outcome=rng.choice([0, 1]), source="admin",
                                             resolved_at=T0 + timedelta(seconds=n))
            elif pick < 0.45:
                field = rng.choice(["tick_size", "lot_size", "venue", "quote_currency",
                                    "trading_hours", "description", "commission_per_unit",
                                    "commission_rate", "slippage_ticks"])
                value: Any = {"tick_size": "0.25", "lot_size": "2.500", "venue": "binance",
                              "quote_currency": "EUR", "description": "new",
                              "commission_per_unit": "0.50", "commission_rate": "0.001",
                              "slippage_ticks": 4,
                              "trading_hours": {"sessions": [{"days": [5], "open": "10:00",
                                                              "close": "11:00:30"}]}}[field]
                payload = InstrumentUpdated(changes=InstrumentChanges.model_validate(
                    {field: value}))
            elif pick < 0.65:
                payload = InstrumentHalted(reason=f"halt {n}")
            elif pick < 0.85:
                payload = InstrumentResumed()
            else:
                payload = InstrumentCommandRejected(
                    command_id=uuid.uuid4(), command_type="instrument.halt",
                    reason="instrument-already-halted")
            seq = seq + 1 if rng.random() > 0.1 else max(1, seq - 1)  # a replayed one
            events.append(encode(make_event(
                payload, aggregate_id=symbol, sequence=seq,
                occurred_at=T0 + timedelta(seconds=seq, microseconds=rng.randrange(10**6)),
                correlation_id=uuid.uuid4(), causation_id=None, event_id=uuid.uuid4())))
        out.append(events)
    merged: list[bytes] = []
    while any(out):
        stream = rng.choice([s for s in out if s])
        merged.append(stream.pop(0))
    return merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10**6), st.lists(st.booleans(), min_size=1),
       st.lists(st.integers(min_value=1, max_value=40), min_size=1))
def test_batches_fold_alike_whatever_the_mix_and_the_cuts(
        seed: int, fast_flags: list[bool], cuts: list[int]) -> None:
    records = streams(seed)
    reference = exact(fold_alone({}, [slow(d)[1] for d in records]))
    events: list[Event] = []
    for i, data in enumerate(records):
        fast = fast_flags[i % len(fast_flags)]
        events.append(FAST.decode(data) if fast else slow(data)[1])
    rows: dict[str, Row] = {}
    i = n = 0
    while i < len(events):
        size = cuts[n % len(cuts)]
        n += 1
        changed = fold_batch(rows, events[i:i + size])
        rows.update(changed)
        i += size
    assert exact(rows) == reference
    # A batch replayed onto its own result changes nothing (the runner's redelivery).
    assert fold_batch(rows, events) == {}
