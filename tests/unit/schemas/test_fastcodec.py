"""The compiled fast path (schemas/fastcodec.py) against the pydantic path it stands in for.

Three promises: a record both accept gives equal models (with the same fields set); a record
the fast path does not take falls back, so every refusal is today's DecodeError, reason and
message; and the Structs agree with the JSON Schema the pydantic models export.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import default_registry, fastcodec
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import CommandEnvelope, EventEnvelope, make_command, make_event
from schemas.errors import DecodeError
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentHalted,
    UpdateInstrument,
)
from schemas.market import MarketBarClosed, MarketTicksPublished, TickRow
from tests.integration.tapes import event_tape

REGISTRY = default_registry()
T0 = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
NS0 = 1_795_000_000_000_000_000


@contextmanager
def pydantic_only() -> Iterator[None]:
    """The codec and registry as they were before the fast path."""
    saved = fastcodec.decode, fastcodec.convert

    def off(*_: Any) -> Any:
        raise fastcodec.Fallback

    fastcodec.decode, fastcodec.convert = off, off  # type: ignore[assignment]
    try:
        yield
    finally:
        fastcodec.decode, fastcodec.convert = saved


def fields_set(model: Any) -> Any:
    """model_fields_set, recursively: equality of models ignores it, the folds do not."""
    if isinstance(model, BaseModel):
        return (type(model).__name__, frozenset(model.model_fields_set),
                {k: fields_set(getattr(model, k)) for k in type(model).model_fields})
    if isinstance(model, tuple):
        return tuple(fields_set(m) for m in model)
    return None


def outcome(data: bytes, *, command: bool = False) -> tuple[str, Any, Any]:
    decode = decode_command if command else decode_event
    payload = REGISTRY.command_payload if command else REGISTRY.event_payload
    try:
        env = decode(data)
    except DecodeError as exc:
        return ("refused", exc.reason, str(exc))
    # repr, not ==: a NaN inside a payload dict is never equal to itself; repr shows every
    # field's type and exact value.
    try:
        parsed = payload(env)  # type: ignore[arg-type]
    except DecodeError as exc:
        return ("payload-refused", (repr(env), fields_set(env)), (exc.reason, str(exc)))
    return ("ok", (repr(env), fields_set(env)), (repr(parsed), fields_set(parsed)))


def assert_same(data: bytes, *, command: bool = False) -> tuple[str, Any, Any]:
    fast = outcome(data, command=command)
    with pydantic_only():
        slow = outcome(data, command=command)
    assert fast == slow
    return fast


def ticks_event(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return envelope({"instrument": "BTC-USD", "venue": "binance", "ticks": rows, **extra},
                    "market.ticks-published")


def envelope(payload: dict[str, Any], type_: str, /, **over: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": type_, "version": 1,
            "aggregate_id": "BTC-USD", "sequence": 7, "occurred_at": "2026-12-05T06:30:00Z",
            "correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": None,
            "payload": payload, **over}


def tick(**over: Any) -> dict[str, Any]:
    return {"venue_ts_ns": NS0, "received_ts_ns": NS0 + 5, "price": 101.25, "size": 0.5,
            "side": "buy", "trade_id": "t1", **over}


BAR = {"instrument": "BTC-USD", "resolution": "1m", "open_time_ns": NS0,
       "close_time_ns": NS0 + 60_000_000_000, "open": 100.0, "high": 101.5, "low": 99.25,
       "close": 100.5, "volume": 12.5, "trades": 40}


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


# Valid records: the fast path takes them and builds the same models ------------------------


def test_the_rebuild_tape_decodes_alike_and_fast() -> None:
    records = [v for _, v in event_tape(40, 10).records]
    for data in records:
        assert assert_same(data)[0] == "ok"
        fastcodec.decode(data, EventEnvelope)  # taken by the fast path, no Fallback


def test_tick_batches_bars_and_commands_decode_alike_and_fast() -> None:
    ticks = tuple(TickRow(venue_ts_ns=NS0 + i, received_ts_ns=NS0 + i, price=100 + i / 8,
                          size=i / 3, bid=99.5 if i % 2 else None, side="sell" if i % 3 else None,
                          trade_id=str(i)) for i in range(50))
    events = [
        make_event(MarketTicksPublished(instrument="BTC-USD", venue="binance", ticks=ticks),
                   aggregate_id="BTC-USD", sequence=3, occurred_at=T0,
                   correlation_id=uuid.uuid4(), causation_id=None, event_id=uuid.uuid4()),
        make_event(MarketBarClosed.model_validate(BAR), aggregate_id="BTC-USD", sequence=9,
                   occurred_at=T0 + timedelta(microseconds=17), correlation_id=uuid.uuid4(),
                   causation_id=uuid.uuid4(), event_id=uuid.uuid4(), actor="system"),
    ]
    for env in events:
        data = encode(env)
        assert assert_same(data)[0] == "ok"
        parsed = fastcodec.convert(env.payload, REGISTRY.model(env.type))
        assert parsed == REGISTRY.model(env.type).model_validate(env.payload)
    for payload in (HaltInstrument(reason="maintenance"),
                    UpdateInstrument(changes=InstrumentChanges(tick_size=Decimal("0.05")))):
        cmd = make_command(payload, aggregate_id="X1", command_id=uuid.uuid4(), issued_at=T0)
        data = encode(cmd)
        assert assert_same(data, command=True)[0] == "ok"
        assert fastcodec.decode(data, CommandEnvelope) == cmd


def test_absent_optional_fields_stay_out_of_the_fields_set() -> None:
    doc = envelope({"instrument": "BTC-USD", "venue": "binance",
                    "ticks": [{"venue_ts_ns": NS0, "received_ts_ns": NS0, "price": 1,
                               "size": 0}]}, "market.ticks-published")
    del doc["causation_id"], doc["actor"]
    assert assert_same(dumps(doc))[0] == "ok"
    env = decode_event(dumps(doc))
    payload = REGISTRY.event_payload(env)
    assert isinstance(payload, MarketTicksPublished)
    assert "actor" not in env.model_fields_set and "causation_id" not in env.model_fields_set
    assert payload.ticks[0].model_fields_set == {"venue_ts_ns", "received_ts_ns", "price",
                                                 "size"}
    assert payload.ticks[0].price == 1.0 and isinstance(payload.ticks[0].price, float)


def test_offsets_are_turned_to_utc_as_pydantic_does() -> None:
    doc = envelope(BAR, "market.bar-closed", occurred_at="2026-12-05T08:30:00.5+02:00")
    assert_same(dumps(doc))
    env = decode_event(dumps(doc))
    assert env.occurred_at == datetime(2026, 12, 5, 6, 30, 0, 500_000, tzinfo=UTC)
    assert env.occurred_at.utcoffset() == timedelta(0)


# Invalid or unusual records: refused alike, with today's reasons and messages ---------------

BAD_ENVELOPES: list[tuple[str, dict[str, Any]]] = [
    ("bad uuid", {"event_id": "not-a-uuid"}),
    ("uuid without hyphens", {"event_id": uuid.uuid4().hex}),
    ("uuid uppercase", {"correlation_id": str(uuid.uuid4()).upper()}),
    ("naive datetime", {"occurred_at": "2026-12-05T06:30:00"}),
    ("space separator", {"occurred_at": "2026-12-05 06:30:00Z"}),
    ("seven fractional digits", {"occurred_at": "2026-12-05T06:30:00.1234567Z"}),
    ("nine fractional digits", {"occurred_at": "2026-12-05T06:30:00.123456789+01:00"}),
    ("date only", {"occurred_at": "2026-12-05"}),
    ("unix time", {"occurred_at": 1_795_000_000}),
    ("leap second", {"occurred_at": "2026-12-31T23:59:60Z"}),
    ("month 13", {"occurred_at": "2026-13-05T06:30:00Z"}),
    ("overflow in utc", {"occurred_at": "0001-01-01T00:00:00+01:00"}),
    ("version zero", {"version": 0}),
    ("version as string", {"version": "1"}),
    ("version as float", {"version": 1.0}),
    ("version as bool", {"version": True}),
    ("huge sequence", {"sequence": 2**70}),
    ("empty type", {"type": ""}),
    ("long aggregate", {"aggregate_id": "x" * 201}),
    ("extra field", {"surprise": 1}),
    ("payload not an object", {"payload": [1, 2]}),
    ("actor too long", {"actor": "a" * 201}),
    ("actor a number", {"actor": 5}),
]


@pytest.mark.parametrize(("name", "change"), BAD_ENVELOPES, ids=[n for n, _ in BAD_ENVELOPES])
def test_unusual_envelopes_get_the_pydantic_answer(name: str, change: dict[str, Any]) -> None:
    assert_same(dumps(envelope(BAR, "market.bar-closed", **change)))


@pytest.mark.parametrize("missing", ["event_id", "type", "occurred_at", "payload", "sequence"])
def test_missing_fields_get_the_pydantic_answer(missing: str) -> None:
    doc = envelope(BAR, "market.bar-closed")
    del doc[missing]
    assert assert_same(dumps(doc))[0] == "refused"


@pytest.mark.parametrize("data", [b"", b"{", b"null", b"[]", b'"x"', b"\xff\xfe",
                                  b'{"event_id": NaN}', b'{"a": "\\ud800"}'])
def test_malformed_bytes_get_the_pydantic_answer(data: bytes) -> None:
    assert assert_same(data)[0] == "refused"


BAD_TICKS: list[tuple[str, dict[str, Any]]] = [
    ("nan price", {"price": float("nan")}),
    ("infinite price", {"price": float("inf")}),
    ("zero price", {"price": 0}),
    ("negative size", {"size": -1}),
    ("price as string", {"price": "101.25"}),
    ("price as bool", {"price": True}),
    ("huge int price", {"price": 10**400}),
    ("ns before 2000", {"venue_ts_ns": 1}),
    ("ns as float", {"venue_ts_ns": float(NS0)}),
    ("bad side", {"side": "hold"}),
    ("long trade id", {"trade_id": "t" * 101}),
    ("extra field", {"venue": "x"}),
    ("null bid", {"bid": None}),
    ("nan bid", {"bid": float("nan")}),
]


@pytest.mark.parametrize(("name", "change"), BAD_TICKS, ids=[n for n, _ in BAD_TICKS])
def test_unusual_ticks_get_the_pydantic_answer(name: str, change: dict[str, Any]) -> None:
    assert_same(dumps(ticks_event([tick(), tick(**change)])))


@pytest.mark.parametrize("payload", [
    {"instrument": "btc-usd", "venue": "binance", "ticks": [tick()]},
    {"instrument": "BTC-USD\n", "venue": "binance", "ticks": [tick()]},
    {"instrument": "BTC-USD", "venue": "binance\n", "ticks": [tick()]},
    {"instrument": "BTC-USD", "venue": "Binance", "ticks": [tick()]},
    {"instrument": "BTC-USD", "venue": "binance", "ticks": []},
    {"instrument": "BTC-USD", "venue": "binance", "ticks": [tick()] * 1001},
    {"instrument": "BTC-USD", "venue": "binance"},
    {**BAR, "resolution": "2m"},
    {**BAR, "trades": 0},
    {**BAR, "volume": float("inf")},
    {**BAR, "extra": True},
])
def test_unusual_payloads_get_the_pydantic_answer(payload: dict[str, Any]) -> None:
    type_ = "market.bar-closed" if "resolution" in payload else "market.ticks-published"
    assert_same(dumps(envelope(payload, type_)))


def test_an_old_version_goes_through_the_upcasters() -> None:
    # Only current versions have a Struct: version 2 of a version-1 type is refused as today.
    kind, _, (reason, _) = assert_same(dumps(envelope(BAR, "market.bar-closed", version=2)))
    assert kind == "payload-refused" and reason == "unsupported-version"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)
TEXTISH = st.sampled_from([
    "2026-12-05T06:30:00Z", "2026-12-05T06:30:00.123456+05:30", "2026-12-05T06:30:00.1Z",
    "2026-12-05t06:30:00z", "2026-12-05T06:30:00-00:00", "2026-12-05T06:30:00+23:59",
    "2026-12-05T06:30Z", "2026-02-30T06:30:00Z", str(uuid.UUID(int=5)), "BTC-USD", "1m"])
FIELD_VALUES = JSONISH | TEXTISH | st.integers(min_value=NS0 - 10, max_value=NS0 + 10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["event_id", "type", "version", "aggregate_id", "sequence",
                        "occurred_at", "correlation_id", "causation_id", "actor", "payload"]),
       FIELD_VALUES)
def test_any_envelope_field_value_gets_the_same_answer(field: str, value: Any) -> None:
    doc = envelope(BAR, "market.bar-closed")
    doc[field] = value
    assert_same(dumps(doc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([*tick(), "bid", "ask"]), FIELD_VALUES | st.floats())
def test_any_tick_field_value_gets_the_same_answer(field: str, value: Any) -> None:
    assert_same(dumps(ticks_event([tick(**{field: value})])))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(BAR)), FIELD_VALUES | st.floats())
def test_any_bar_field_value_gets_the_same_answer(field: str, value: Any) -> None:
    assert_same(dumps(envelope({**BAR, field: value}, "market.bar-closed")))


# The Structs agree with the exported JSON Schema ---------------------------------------------

CONSTRAINTS = ("minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
               "exclusiveMaximum", "minItems", "maxItems", "enum", "format")
# What a Struct may add to its model's schema: checks the model makes in Python validators
# (invisible to JSON Schema) and the strict timestamp shape standing for `format: date-time`.
STRICTER = {"exclusiveMinimum", "minimum", "maximum", "pattern"}
STRUCT_NAMES = {struct.__name__: model.__name__ for model, struct in fastcodec.MIRRORS.items()}


def _variants(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in schema.get("anyOf", [schema]):
        if "$ref" in s:
            name = s["$ref"].rsplit("/", 1)[1]
            out.append({"type": "object", "ref": STRUCT_NAMES.get(name, name)})
            continue
        s = dict(s)
        if "enum" in s and "type" not in s:  # msgspec states the values only
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in s["enum"])
            s["type"] = "integer" if ints else "string"
        if "items" in s:
            s["items"] = _variants(s["items"], defs)
        out.append(s)
    return out


def _pattern(p: str) -> str:
    return p.removesuffix(r"\Z").removesuffix("$")


@pytest.mark.parametrize("model", list(fastcodec.MIRRORS), ids=lambda m: m.__name__)
def test_each_struct_agrees_with_its_models_json_schema(model: type[BaseModel]) -> None:
    struct = fastcodec.MIRRORS[model]
    theirs = model.model_json_schema()
    ours_doc = msgspec.json.schema(struct)
    ours = ours_doc["$defs"][struct.__name__]
    assert list(ours["properties"]) == list(theirs["properties"]), "field names and order"
    assert set(ours.get("required", [])) == set(theirs.get("required", [])), "required fields"
    assert ours["additionalProperties"] is False and theirs["additionalProperties"] is False
    for name, their_prop in theirs["properties"].items():
        our_vs = _variants(ours["properties"][name], ours_doc["$defs"])
        their_vs = _variants(their_prop, theirs.get("$defs", {}))
        assert len(our_vs) == len(their_vs), (name, our_vs, their_vs)
        for ov, tv in zip(our_vs, their_vs, strict=True):
            where = f"{model.__name__}.{name}"
            # A Struct accepts a subset: an integer where the model takes a number is fine.
            assert ov.get("type") == tv.get("type") or (
                ov.get("type") == "integer" and tv.get("type") == "number"), where
            assert ov.get("ref") == tv.get("ref"), where
            for key in CONSTRAINTS:
                if key == "format" and tv.get(key) == "date-time":
                    assert ov.get("pattern") == fastcodec.TIMESTAMP_RE, where
                    continue
                if key not in tv and key in ov:
                    assert key in STRICTER, (where, key)
                    continue
                if key == "pattern" and key in tv:
                    assert _pattern(ov[key]) == _pattern(tv[key]), where
                    assert ov[key].endswith(r"\Z"), (where, "Python's $ allows a final \\n")
                elif key == "enum" and key in tv:
                    assert sorted(ov.get(key, [])) == sorted(tv[key]), where
                elif key in tv:
                    assert ov.get(key) == tv[key], (where, key)
            if "items" in tv:
                assert ov["items"] == [{"type": "object", "ref": tv["items"][0]["ref"]}] \
                    if "ref" in tv["items"][0] else ov["items"][0]["type"] == \
                    tv["items"][0]["type"], where


def test_a_model_changed_without_its_struct_fails_the_check() -> None:
    class Changed(BaseModel):
        instrument: str
        resolution: str
        open_time_ns: int

    saved = fastcodec.MIRRORS.get(Changed)
    fastcodec.MIRRORS[Changed] = fastcodec.MarketBarClosedS
    try:
        with pytest.raises(AssertionError):
            test_each_struct_agrees_with_its_models_json_schema(Changed)
    finally:
        if saved is None:
            del fastcodec.MIRRORS[Changed]


# The Structs a read model folds directly (FOLD_MIRRORS) may drop a model's lax forms (a
# number for a decimal): each of their variants must be one of the model's, as narrow or
# narrower.
STRUCT_NAMES.update({struct.__name__: model.__name__
                     for model, struct in fastcodec.FOLD_MIRRORS.items()})


def _narrower(ov: dict[str, Any], tv: dict[str, Any]) -> bool:
    if not (ov.get("type") == tv.get("type") or (
            ov.get("type") == "integer" and tv.get("type") == "number")):
        return False
    if ov.get("ref") != tv.get("ref"):
        return False
    for key in CONSTRAINTS:
        if key == "format" and tv.get(key) == "date-time":
            if ov.get("pattern") != fastcodec.TIMESTAMP_RE:
                return False
        elif key not in tv:
            if key in ov and key not in STRICTER:
                return False
        elif key == "pattern":
            if _pattern(ov.get(key, "")) != _pattern(tv[key]) or not ov[key].endswith(r"\Z"):
                return False
        elif key == "enum":
            if sorted(ov.get(key, [])) != sorted(tv[key]):
                return False
        elif ov.get(key) != tv[key]:
            return False
    if "items" in tv:
        return bool(ov.get("items")) and all(
            any(_narrower(o, t) for t in tv["items"]) for o in ov["items"])
    return True


@pytest.mark.parametrize("model", list(fastcodec.FOLD_MIRRORS), ids=lambda m: m.__name__)
def test_each_fold_struct_is_its_models_json_schema_or_narrower(
        model: type[BaseModel]) -> None:
    struct = fastcodec.FOLD_MIRRORS[model]
    theirs = model.model_json_schema()
    ours_doc = msgspec.json.schema(struct)
    ours = ours_doc["$defs"][struct.__name__]
    assert list(ours.get("properties", {})) == list(theirs["properties"]), "names and order"
    assert set(ours.get("required", [])) == set(theirs.get("required", [])), "required fields"
    assert ours["additionalProperties"] is False and theirs["additionalProperties"] is False
    for name, their_prop in theirs["properties"].items():
        our_vs = _variants(ours["properties"][name], ours_doc["$defs"])
        their_vs = _variants(their_prop, theirs.get("$defs", {}))
        for ov in our_vs:
            assert any(_narrower(ov, tv) for tv in their_vs), (model.__name__, name, ov,
                                                               their_vs)


def test_a_looser_fold_struct_fails_the_check() -> None:
    class Loose(msgspec.Struct, forbid_unknown_fields=True):
        reason: str
        detail: int = 0  # not in the model

    saved = fastcodec.FOLD_MIRRORS[InstrumentHalted]
    fastcodec.FOLD_MIRRORS[InstrumentHalted] = Loose
    try:
        with pytest.raises(AssertionError):
            test_each_fold_struct_is_its_models_json_schema_or_narrower(InstrumentHalted)
    finally:
        fastcodec.FOLD_MIRRORS[InstrumentHalted] = saved
