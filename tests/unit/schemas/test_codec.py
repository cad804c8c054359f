"""Envelopes through the codec: round trips and every way bytes can be bad."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import default_registry
from schemas.codec import MAX_MESSAGE_BYTES, decode_command, decode_event, encode
from schemas.envelope import (
    CommandEnvelope,
    CommandPayload,
    EventEnvelope,
    EventPayload,
    make_command,
    make_event,
)
from schemas.errors import DecodeError, MessageTooLargeError, UnknownTypeError
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
    RegisterInstrument,
    ResumeInstrument,
    TradingHours,
    TradingSession,
    UpdateInstrument,
)

REGISTRY = default_registry()

# -- strategies --------------------------------------------------------------------------------

symbols = st.from_regex(r"[A-Z0-9][A-Z0-9._:/-]{0,39}", fullmatch=True)
venues = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
currencies = st.from_regex(r"[A-Z]{3,5}", fullmatch=True)
positive_decimals = st.decimals(
    min_value=Decimal("0.000000000001"), max_value=Decimal("9999999999999999"), places=12
)
short_text = st.text(max_size=40)
sessions = st.builds(
    TradingSession,
    days=st.lists(st.integers(0, 6), min_size=1, max_size=7).map(tuple),
    open=st.times(),
    close=st.times(),
)
trading_hours = st.builds(
    TradingHours,
    timezone=st.sampled_from(["UTC", "America/New_York", "Europe/London"]),
    sessions=st.lists(sessions, max_size=3).map(tuple),
)
specs = st.builds(
    InstrumentSpec,
    symbol=symbols,
    venue=venues,
    asset_class=st.sampled_from(["crypto", "fx", "index", "equity", "commodity", "prediction"]),
    tick_size=positive_decimals,
    lot_size=positive_decimals,
    quote_currency=currencies,
    trading_hours=trading_hours,
    description=short_text,
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "venue": venues,
        "tick_size": positive_decimals,
        "lot_size": positive_decimals,
        "quote_currency": currencies,
        "trading_hours": trading_hours,
        "description": short_text,
    },
).filter(bool).map(lambda fields: InstrumentChanges(**fields))
reasons = st.text(min_size=1, max_size=200)

command_payloads: st.SearchStrategy[CommandPayload] = st.one_of(
    st.builds(RegisterInstrument, spec=specs),
    st.builds(UpdateInstrument, changes=changes),
    st.builds(HaltInstrument, reason=reasons),
    st.builds(ResumeInstrument),
)
event_payloads: st.SearchStrategy[EventPayload] = st.one_of(
    st.builds(InstrumentRegistered, spec=specs),
    st.builds(InstrumentUpdated, changes=changes),
    st.builds(InstrumentHalted, reason=reasons),
    st.builds(InstrumentResumed),
    st.builds(
        InstrumentCommandRejected,
        command_id=st.uuids(),
        command_type=st.sampled_from([m.TYPE for m in REGISTRY.command_types()]),
        reason=st.sampled_from(["instrument-not-registered", "nothing-to-change"]),
        detail=short_text,
    ),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=16), json_values, max_size=6)
aware_datetimes = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.timezones()
)

event_envelopes = st.builds(
    EventEnvelope,
    event_id=st.uuids(),
    type=st.text(min_size=1, max_size=120),
    version=st.integers(min_value=1, max_value=2**31),
    aggregate_id=st.text(min_size=1, max_size=200),
    sequence=st.integers(min_value=1, max_value=2**62),
    occurred_at=aware_datetimes,
    correlation_id=st.uuids(),
    causation_id=st.none() | st.uuids(),
    payload=json_objects,
)
command_envelopes = st.builds(
    CommandEnvelope,
    command_id=st.uuids(),
    type=st.text(min_size=1, max_size=120),
    version=st.integers(min_value=1, max_value=2**31),
    aggregate_id=st.text(min_size=1, max_size=200),
    issued_at=aware_datetimes,
    correlation_id=st.uuids(),
    actor=st.none() | st.text(max_size=200),
    payload=json_objects,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _event(payload: EventPayload, **overrides: Any) -> EventEnvelope:
    fields: dict[str, Any] = {
        "aggregate_id": "BTC-USD",
        "sequence": 1,
        "occurred_at": NOW,
        "correlation_id": uuid.UUID(int=1),
        "causation_id": uuid.UUID(int=2),
        "event_id": uuid.UUID(int=3),
    }
    fields.update(overrides)
    return make_event(payload, **fields)


def _event_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(_event(InstrumentHalted(reason="maintenance"))))
    data.update(overrides)
    return data


def _reason(data: bytes | None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_event(data)
    return caught.value.reason


# -- round trips -------------------------------------------------------------------------------


@given(event_envelopes)
def test_event_envelope_with_any_json_payload_round_trips(envelope: EventEnvelope) -> None:
    assert decode_event(encode(envelope)) == envelope


@given(command_envelopes)
def test_command_envelope_with_any_json_payload_round_trips(envelope: CommandEnvelope) -> None:
    assert decode_command(encode(envelope)) == envelope


@given(event_payloads, st.integers(min_value=1, max_value=10**9), aware_datetimes)
def test_typed_event_payload_round_trips_through_codec_and_registry(
    payload: EventPayload, sequence: int, occurred_at: datetime
) -> None:
    envelope = _event(payload, sequence=sequence, occurred_at=occurred_at)

    decoded = decode_event(encode(envelope))

    assert decoded == envelope
    assert REGISTRY.event_payload(decoded) == payload


@given(command_payloads, st.uuids(), symbols)
def test_typed_command_payload_round_trips_through_codec_and_registry(
    payload: CommandPayload, command_id: uuid.UUID, aggregate_id: str
) -> None:
    envelope = make_command(payload, aggregate_id=aggregate_id, command_id=command_id,
                            issued_at=NOW, actor="trader-1")

    decoded = decode_command(encode(envelope))

    assert decoded == envelope
    assert decoded.correlation_id == command_id
    assert REGISTRY.command_payload(decoded) == payload


def test_event_round_trip_when_offset_has_seconds_keeps_the_instant() -> None:
    lmt = timezone(timedelta(minutes=17, seconds=30))  # e.g. Amsterdam local mean time
    envelope = _event(InstrumentResumed(), occurred_at=datetime(1900, 1, 1, tzinfo=lmt))

    decoded = decode_event(encode(envelope))

    assert decoded.occurred_at == datetime(1900, 1, 1, tzinfo=lmt)
    assert decoded.occurred_at.tzinfo is UTC


# -- bad bytes ---------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_decode_when_bytes_are_arbitrary_raises_only_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(data)
    assert caught.value.reason in {"malformed-json", "invalid-envelope"}


@given(event_payloads, st.data())
def test_decode_when_json_is_truncated_raises_malformed_json(
    payload: EventPayload, data: st.DataObject
) -> None:
    encoded = encode(_event(payload))
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))

    assert _reason(encoded[:cut]) == "malformed-json"


@pytest.mark.parametrize("data", [b"\xff\xfe\x00", b"not json", b"{'single': 'quotes'}",
                                  b'{"event_id": "\xff"}'])
def test_decode_when_bytes_are_not_json_raises_malformed_json(data: bytes) -> None:
    assert _reason(data) == "malformed-json"


def test_decode_when_value_is_none_tombstone_raises_empty() -> None:
    assert _reason(None) == "empty"
    with pytest.raises(DecodeError) as caught:
        decode_command(None)
    assert caught.value.reason == "empty"


@pytest.mark.parametrize("data", [b"[]", b"null", b'"event"', b"42"])
def test_decode_when_json_is_not_an_object_raises_invalid_envelope(data: bytes) -> None:
    assert _reason(data) == "invalid-envelope"


@pytest.mark.parametrize(
    "field",
    ["event_id", "type", "version", "aggregate_id", "sequence", "occurred_at",
     "correlation_id", "payload"],
)
def test_decode_when_envelope_field_is_missing_raises_invalid_envelope(field: str) -> None:
    data = _event_json()
    del data[field]

    with pytest.raises(DecodeError) as caught:
        decode_event(json.dumps(data).encode())

    assert caught.value.reason == "invalid-envelope"
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", 5),
        ("event_id", "not-a-uuid"),
        ("version", "one"),
        ("version", 0),
        ("sequence", 1.5),
        ("sequence", 0),
        ("aggregate_id", ""),
        ("occurred_at", "2025-01-02T03:04:05"),  # naive: no offset
        ("occurred_at", "yesterday"),
        ("payload", []),
        ("type", None),
        ("surprise", "field"),
    ],
)
def test_decode_when_envelope_field_has_wrong_type_raises_invalid_envelope(
    field: str, value: Any
) -> None:
    data = json.dumps(_event_json(**{field: value})).encode()

    assert _reason(data) == "invalid-envelope"


def test_command_decode_when_given_an_event_raises_invalid_envelope() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_command(encode(_event(InstrumentResumed())))
    assert caught.value.reason == "invalid-envelope"


def test_decode_when_timestamp_overflows_in_utc_raises_invalid_envelope() -> None:
    data = json.dumps(_event_json(occurred_at="0001-01-01T00:00:00+05:00")).encode()

    with pytest.raises(DecodeError) as caught:
        decode_event(data)

    assert caught.value.reason == "invalid-envelope"
    assert "occurred_at" in str(caught.value)


# -- size limit --------------------------------------------------------------------------------


def test_encode_when_message_exceeds_limit_raises_message_too_large() -> None:
    envelope = _event(InstrumentHalted(reason="x" * MAX_MESSAGE_BYTES))

    with pytest.raises(MessageTooLargeError) as caught:
        encode(envelope)

    assert caught.value.limit == MAX_MESSAGE_BYTES
    assert caught.value.size > MAX_MESSAGE_BYTES


def test_decode_when_message_exceeds_limit_raises_too_large() -> None:
    data = encode(_event(InstrumentHalted(reason="x" * MAX_MESSAGE_BYTES)), limit=2**21)

    assert _reason(data) == "too-large"


def test_encode_at_exactly_the_limit_succeeds_and_decodes() -> None:
    envelope = _event(InstrumentResumed())
    size = len(encode(envelope))

    assert decode_event(encode(envelope, limit=size), limit=size) == envelope
    with pytest.raises(MessageTooLargeError):
        encode(envelope, limit=size - 1)


# -- payloads through the registry -------------------------------------------------------------


def test_payload_when_type_is_unknown_raises_unknown_type() -> None:
    envelope = decode_event(json.dumps(_event_json(type="instrument.exploded")).encode())

    with pytest.raises(UnknownTypeError) as caught:
        REGISTRY.event_payload(envelope)

    assert caught.value.reason == "unknown-type"
    assert caught.value.type == "instrument.exploded"


def test_payload_when_version_is_newer_than_known_raises_unsupported_version() -> None:
    envelope = decode_event(json.dumps(_event_json(version=2)).encode())

    with pytest.raises(DecodeError) as caught:
        REGISTRY.event_payload(envelope)

    assert caught.value.reason == "unsupported-version"


def test_payload_when_field_has_wrong_type_raises_invalid_payload() -> None:
    envelope = decode_event(json.dumps(_event_json(payload={"reason": 42})).encode())

    with pytest.raises(DecodeError) as caught:
        REGISTRY.event_payload(envelope)

    assert caught.value.reason == "invalid-payload"
    assert "reason" in str(caught.value)


def test_payload_when_event_envelope_holds_a_command_type_raises_not_an_event() -> None:
    data = _event_json(type="instrument.halt", payload={"reason": "maintenance"})
    envelope = decode_event(json.dumps(data).encode())

    with pytest.raises(DecodeError) as caught:
        REGISTRY.event_payload(envelope)

    assert caught.value.reason == "not-an-event"
