"""A compiled fast path for the hot envelopes and payloads: msgspec Structs that mirror the
pydantic models, accepting a subset of what those accept, and building the very same models.

How it is used: `schemas.codec` and `schemas.registry` try the fast path first. A Struct
decodes (or converts) the input with msgspec's C decoder, strictly; the result is then turned
into the pydantic model with its fields set directly, as `model_construct` does, without a
second validation. Anything the fast path does not accept — a wrong type, a missing or extra
field, a value out of bounds, but also a form it does not bother to read (a timestamp with a
space, a decimal in exponent form, a string where pydantic's lax mode takes a number) — raises
`Fallback`, and the caller takes the pydantic path, which refuses it with exactly today's
`DecodeError` or accepts it as today. So the fast path may only ever be *narrower*:

- a Struct's constraints are the model's (same names, same required fields, same bounds and
  patterns; `tests/unit/schemas/test_fastcodec.py` checks them against the JSON Schema the
  models export, so a model changed without its Struct fails a test);
- patterns end in `\\Z`: pydantic's (Rust) `$` is the end of the text, Python's `$` also
  matches before a final newline;
- timestamps are read as strings of one strict RFC 3339 shape (at most six fractional
  digits: msgspec's own datetime rounds a seventh, pydantic truncates) and parsed with
  `fromisoformat`;
- floats that must be finite are bounded by the largest float (msgspec refuses `inf` then).

What is mirrored, and why only that (bench/codec.py, bench/RESULTS.md): the two envelopes,
which every consumer decodes, and the market payloads whose pydantic models run Python
validators per value (tick batches, closed bars). Building a pydantic model from Python costs
about as much as pydantic-core's own validation of a small model, so payloads validated in
Rust alone (most of instrument, tier, purchase, account) gain nothing from a mirror and are
left to pydantic. Only the current version of a type has a Struct; an old version goes
through its upcasters and the pydantic model, as before.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import asdict
from pydantic import BaseModel

from schemas import instrument as ins
from schemas import market as mkt
from schemas.envelope import CommandEnvelope, EventEnvelope, EventPayload, Payload
from schemas.instrument import LOCAL_TIME_RE, SYMBOL_RE

M = TypeVar("M", bound=BaseModel)


class Fallback(Exception):
    """The fast path does not accept this input: decode it with pydantic instead."""


# Field types ----------------------------------------------------------------------------------

MAX_FLOAT = sys.float_info.max


def _until_end(pattern: str) -> str:
    """A pydantic pattern for Python's `re`: `$` also matches before a final newline there."""
    return pattern.removesuffix("$") + r"\Z"


# One strict RFC 3339 shape: what `encode` writes (pydantic writes `Z` for UTC) and what any
# sane producer sends. Everything else pydantic accepts goes the slow way.
TIMESTAMP_RE = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                r"(Z|[+-][0-9]{2}:[0-9]{2})\Z")
Timestamp = Annotated[str, Meta(pattern=TIMESTAMP_RE)]

Str120 = Annotated[str, Meta(min_length=1, max_length=120)]
Str200 = Annotated[str, Meta(min_length=1, max_length=200)]
Actor = Annotated[str, Meta(max_length=200)]
Version = Annotated[int, Meta(ge=1)]
Symbol = Annotated[str, Meta(pattern=_until_end(SYMBOL_RE.pattern))]
Venue = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}\Z")]
Nanos = Annotated[int, Meta(ge=946_684_800_000_000_000, le=4_102_444_800_000_000_000)]
Price = Annotated[float, Meta(gt=0, le=MAX_FLOAT)]
Size = Annotated[float, Meta(ge=0, le=MAX_FLOAT)]


# A positive decimal of at most 16 integer and 12 fractional digits, as a JSON string: what
# `encode` writes for `PositiveDecimal` (max 28 digits, 12 places), nothing pydantic's lax
# forms (numbers, exponents, signs, leading zeros, spaces). All zeros are not positive.
DECIMAL_RE = r"^(?![0.]*\Z)(0|[1-9][0-9]{0,15})(\.[0-9]{1,12})?\Z"
PositiveDecimalStr = Annotated[str, Meta(pattern=DECIMAL_RE)]
LocalTimeStr = Annotated[str, Meta(pattern=_until_end(LOCAL_TIME_RE))]
# Trading costs as `encode` writes them, narrower than the models' bounds (anything else, an
# exponent form included, takes the pydantic path): per unit below 1,000,000, a rate from 0
# to 0.1, 12 places at most.
COMMISSION_PER_UNIT_RE = r"^(0|[1-9][0-9]{0,5})(\.[0-9]{1,12})?\Z"
COMMISSION_RATE_RE = r"^(0|0\.0[0-9]{0,11}|0\.10{0,11})\Z"
CommissionPerUnitStr = Annotated[str, Meta(pattern=COMMISSION_PER_UNIT_RE)]
CommissionRateStr = Annotated[str, Meta(pattern=COMMISSION_RATE_RE)]
SlippageTicks = Annotated[int, Meta(ge=0, le=1_000)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3,5}\Z")]


class _Strict(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of the mirrors: unknown fields refused, as `extra="forbid"` does; keyword-only, so
    the fields are in the model's order (a required one may follow a default)."""


# Envelopes ------------------------------------------------------------------------------------


class EventEnvelopeS(_Strict, kw_only=True):
    event_id: uuid.UUID
    type: Str120
    version: Version
    aggregate_id: Str200
    sequence: Version
    occurred_at: Timestamp
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | UnsetType | None = UNSET
    actor: Actor | UnsetType | None = UNSET
    payload: dict[str, Any]


class CommandEnvelopeS(_Strict, kw_only=True):
    command_id: uuid.UUID
    type: Str120
    version: Version
    aggregate_id: Str200
    issued_at: Timestamp
    correlation_id: uuid.UUID
    actor: Actor | UnsetType | None = UNSET
    payload: dict[str, Any]


# Market ---------------------------------------------------------------------------------------


class TickRowS(_Strict, kw_only=True):
    venue_ts_ns: Nanos
    received_ts_ns: Nanos
    price: Price
    size: Size
    bid: Price | UnsetType | None = UNSET
    ask: Price | UnsetType | None = UNSET
    side: Literal["buy", "sell"] | UnsetType | None = UNSET
    trade_id: Annotated[str, Meta(max_length=100)] | UnsetType | None = UNSET


class MarketTicksPublishedS(_Strict, kw_only=True):
    instrument: Symbol
    venue: Venue
    ticks: Annotated[tuple[TickRowS, ...], Meta(min_length=1, max_length=1000)]


class MarketBarClosedS(_Strict, kw_only=True):
    instrument: Symbol
    resolution: Literal["1m", "5m", "15m", "1h", "4h", "1d"]
    open_time_ns: Nanos
    close_time_ns: Nanos
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Size
    trades: Annotated[int, Meta(ge=1)]


# Instrument events, for the read model's fast fold (no pydantic model is built from these) ----


class TradingSessionS(_Strict, kw_only=True):
    days: Annotated[tuple[Annotated[int, Meta(ge=0, le=6)], ...], Meta(min_length=1,
                                                                        max_length=7)]
    open: LocalTimeStr
    close: LocalTimeStr


class TradingHoursS(_Strict, kw_only=True):
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"
    sessions: Annotated[tuple[TradingSessionS, ...], Meta(max_length=14)] = ()


class InstrumentSpecS(_Strict, kw_only=True):
    symbol: Symbol
    venue: Venue
    asset_class: ins.AssetClass
    tick_size: PositiveDecimalStr
    lot_size: PositiveDecimalStr
    quote_currency: Currency
    trading_hours: TradingHoursS | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=200)] = ""
    commission_per_unit: CommissionPerUnitStr = "0"
    commission_rate: CommissionRateStr = "0"
    slippage_ticks: SlippageTicks = 0
    execution: ins.Execution = "market"


class InstrumentChangesS(_Strict, kw_only=True):
    venue: Venue | UnsetType | None = UNSET
    tick_size: PositiveDecimalStr | UnsetType | None = UNSET
    lot_size: PositiveDecimalStr | UnsetType | None = UNSET
    quote_currency: Currency | UnsetType | None = UNSET
    trading_hours: TradingHoursS | UnsetType | None = UNSET
    description: Annotated[str, Meta(max_length=200)] | UnsetType | None = UNSET
    commission_per_unit: CommissionPerUnitStr | UnsetType | None = UNSET
    commission_rate: CommissionRateStr | UnsetType | None = UNSET
    slippage_ticks: SlippageTicks | UnsetType | None = UNSET
    execution: ins.Execution | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        # The model's `_not_empty`: at least one attribute given and not null.
        for name in self.__struct_fields__:
            if getattr(self, name) not in (UNSET, None):
                return
        raise ValueError("an update must change at least one attribute")


class InstrumentRegisteredS(_Strict, kw_only=True):
    spec: InstrumentSpecS


class InstrumentUpdatedS(_Strict, kw_only=True):
    changes: InstrumentChangesS


class InstrumentHaltedS(_Strict, kw_only=True):
    reason: str


class InstrumentResumedS(_Strict, kw_only=True):
    pass


class InstrumentResolvedS(_Strict, kw_only=True):
    outcome: Literal[0, 1]
    source: ins.ResolutionSource
    resolved_at: Timestamp

    def __post_init__(self) -> None:
        _timestamp(self.resolved_at)  # a date that does not exist: Fallback (ValueError)


class InstrumentCommandRejectedS(_Strict, kw_only=True):
    command_id: uuid.UUID
    command_type: str
    reason: ins.RejectionReason
    detail: str = ""


# Payload mirrors folded directly by a read model (`FastEvents`), never turned into models.
FOLD_MIRRORS: dict[type[BaseModel], type[Struct]] = {
    ins.TradingSession: TradingSessionS,
    ins.TradingHours: TradingHoursS,
    ins.InstrumentSpec: InstrumentSpecS,
    ins.InstrumentChanges: InstrumentChangesS,
    ins.InstrumentRegistered: InstrumentRegisteredS,
    ins.InstrumentUpdated: InstrumentUpdatedS,
    ins.InstrumentHalted: InstrumentHaltedS,
    ins.InstrumentResumed: InstrumentResumedS,
    ins.InstrumentCommandRejected: InstrumentCommandRejectedS,
    ins.InstrumentResolved: InstrumentResolvedS,
}


# Which Struct mirrors which model (envelopes, payloads and the models nested in them).
MIRRORS: dict[type[BaseModel], type[Struct]] = {
    EventEnvelope: EventEnvelopeS,
    CommandEnvelope: CommandEnvelopeS,
    mkt.TickRow: TickRowS,
    mkt.MarketTicksPublished: MarketTicksPublishedS,
    mkt.MarketBarClosed: MarketBarClosedS,
}


# Values: Struct field -> model field ----------------------------------------------------------


def _timestamp(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
        return at if at.tzinfo is UTC else at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Fallback from None


_set = object.__setattr__
Converter = Callable[[Any], Any]
_TICK_REQUIRED = frozenset(("venue_ts_ns", "received_ts_ns", "price", "size"))
_new_tick = mkt.TickRow.__new__
_TickRow = mkt.TickRow


def _ticks(rows: tuple[TickRowS, ...]) -> tuple[mkt.TickRow, ...]:
    """Tick rows, written out: a batch holds up to a thousand of them."""
    out = []
    for o in rows:
        given = set(_TICK_REQUIRED)
        bid, ask, side, trade_id = o.bid, o.ask, o.side, o.trade_id
        if bid is UNSET:
            bid = None
        else:
            given.add("bid")
        if ask is UNSET:
            ask = None
        else:
            given.add("ask")
        if side is UNSET:
            side = None
        else:
            given.add("side")
        if trade_id is UNSET:
            trade_id = None
        else:
            given.add("trade_id")
        m = _new_tick(_TickRow)
        _set(m, "__dict__", {"venue_ts_ns": o.venue_ts_ns, "received_ts_ns": o.received_ts_ns,
                             "price": o.price, "size": o.size, "bid": bid, "ask": ask,
                             "side": side, "trade_id": trade_id})
        _set(m, "__pydantic_fields_set__", given)
        _set(m, "__pydantic_extra__", None)
        _set(m, "__pydantic_private__", None)
        out.append(m)
    return tuple(out)


def _builder(model: type[M]) -> Callable[[Struct], M]:
    """A function turning a mirror instance into the model, as a validation would build it:
    fields in declaration order, defaults for the absent ones, `model_fields_set` the given."""
    struct = MIRRORS[model]
    fields = model.model_fields
    if tuple(fields) != struct.__struct_fields__:
        raise TypeError(f"{struct.__name__} does not mirror {model.__name__}'s fields in order")
    all_names = frozenset(fields)
    optional = tuple((name, info.default) for name, info in fields.items()
                     if not info.is_required())
    converters = tuple((name, conv) for name in fields
                       if (conv := _converter(model, name)) is not None)
    new = model.__new__

    def build(obj: Struct) -> M:
        values = asdict(obj)
        given = set(all_names)
        for name, default in optional:
            if values[name] is UNSET:
                values[name] = default
                given.discard(name)
        for name, conv in converters:
            if name in given:
                values[name] = conv(values[name])
        m = new(model)
        _set(m, "__dict__", values)
        _set(m, "__pydantic_fields_set__", given)
        _set(m, "__pydantic_extra__", None)
        _set(m, "__pydantic_private__", None)
        return m

    return build


def _converter(model: type[BaseModel], name: str) -> Converter | None:
    """How a decoded Struct value becomes the model's value (None: it already is)."""
    kind = _KINDS.get((model, name))
    if kind is None:
        return None
    if kind == "timestamp":
        return _timestamp
    if kind == "ticks*":
        return _ticks
    raise TypeError(f"no converter for {kind!r}")


# Fields whose value needs more than msgspec's own decoding.
_KINDS: dict[tuple[type[BaseModel], str], str] = {
    (EventEnvelope, "occurred_at"): "timestamp",
    (CommandEnvelope, "issued_at"): "timestamp",
    (mkt.MarketTicksPublished, "ticks"): "ticks*",
}


# The fast paths -------------------------------------------------------------------------------


_EVENT_FIELDS = frozenset(EventEnvelope.model_fields)
_COMMAND_FIELDS = frozenset(CommandEnvelope.model_fields)


def _event_envelope(o: EventEnvelopeS) -> EventEnvelope:
    """The envelope's own builder, written out: it runs for every record a consumer reads."""
    given = set(_EVENT_FIELDS)
    causation, actor = o.causation_id, o.actor
    if causation is UNSET:
        causation = None
        given.discard("causation_id")
    if actor is UNSET:
        actor = None
        given.discard("actor")
    m = EventEnvelope.__new__(EventEnvelope)
    _set(m, "__dict__", {
        "event_id": o.event_id, "type": o.type, "version": o.version,
        "aggregate_id": o.aggregate_id, "sequence": o.sequence,
        "occurred_at": _timestamp(o.occurred_at), "correlation_id": o.correlation_id,
        "causation_id": causation, "actor": actor, "payload": o.payload})
    _set(m, "__pydantic_fields_set__", given)
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


def _command_envelope(o: CommandEnvelopeS) -> CommandEnvelope:
    given = set(_COMMAND_FIELDS)
    actor = o.actor
    if actor is UNSET:
        actor = None
        given.discard("actor")
    m = CommandEnvelope.__new__(CommandEnvelope)
    _set(m, "__dict__", {
        "command_id": o.command_id, "type": o.type, "version": o.version,
        "aggregate_id": o.aggregate_id, "issued_at": _timestamp(o.issued_at),
        "correlation_id": o.correlation_id, "actor": actor, "payload": o.payload})
    _set(m, "__pydantic_fields_set__", given)
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


class _Fast:
    """Decoders and converters of every mirrored model, built once."""

    def __init__(self) -> None:
        self.build: dict[type[BaseModel], Callable[[Any], Any]] = {
            model: _builder(model) for model in MIRRORS}
        # The generic builders check the mirrors' field order; the envelopes' are written out.
        self.build[EventEnvelope] = _event_envelope
        self.build[CommandEnvelope] = _command_envelope
        self.decoders: dict[type[BaseModel], msgspec.json.Decoder[Any]] = {
            EventEnvelope: msgspec.json.Decoder(EventEnvelopeS),
            CommandEnvelope: msgspec.json.Decoder(CommandEnvelopeS),
        }


_FAST = _Fast()


def decode(data: bytes, model: type[M]) -> M:
    """Decode JSON bytes into `model` (an envelope), or raise `Fallback`."""
    decoder = _FAST.decoders.get(model)
    if decoder is None:
        raise Fallback
    try:
        obj = decoder.decode(data)
    except msgspec.DecodeError:  # ValidationError is a subclass
        raise Fallback from None
    result: M = _FAST.build[model](obj)
    return result


def has_payload(model: type[Payload]) -> bool:
    return model in MIRRORS


def convert(data: dict[str, Any], model: type[M]) -> M:
    """Validate an already decoded payload (a dict) into `model`, or raise `Fallback`."""
    struct = MIRRORS.get(model)
    if struct is None:
        raise Fallback
    try:
        obj = msgspec.convert(data, struct, strict=True)
    except msgspec.ValidationError:
        raise Fallback from None
    result: M = _FAST.build[model](obj)
    return result


# Whole events for a fold: envelope and payload in one Struct, one C decode -------------------


class FastEvent(_Strict, tag_field="type", kw_only=True):
    """An event envelope whose `payload` is a mirror Struct; a subclass per event type, tagged
    by the envelope's `type`, so one decoder reads any of a read model's events in one pass.
    `occurred_at` stays the checked RFC 3339 text: `at()` is the instant, as the envelope's."""

    event_id: uuid.UUID
    version: Version
    aggregate_id: Str200
    sequence: Version
    occurred_at: Timestamp
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | UnsetType | None = UNSET
    actor: Actor | UnsetType | None = UNSET
    payload: Any  # each subclass's own mirror Struct

    def __post_init__(self) -> None:
        _timestamp(self.occurred_at)  # a date that does not exist: Fallback (ValueError)

    def at(self) -> datetime:
        return _timestamp(self.occurred_at)


def utc_timestamp(text: str) -> datetime:
    """A `FastEvent.occurred_at` (checked at decoding) as the envelope's UTC datetime."""
    return _timestamp(text)


class FastEvents:
    """The fast decoder of a read model's events: `decode(bytes)` returns a `FastEvent`
    subclass instance (`kinds[Model]`) holding the payload's mirror Struct, or raises
    `Fallback` for anything else (other types, other versions, anything the Structs do not
    take), which the caller then decodes with pydantic exactly as before."""

    def __init__(self, payloads: Sequence[type[EventPayload]]) -> None:
        self.kinds: dict[type[EventPayload], type[FastEvent]] = {}
        for model in payloads:
            struct = FOLD_MIRRORS[model]
            self.kinds[model] = msgspec.defstruct(  # type: ignore[assignment]
                f"{struct.__name__}Event", [("payload", struct)], bases=(FastEvent,),
                tag=model.TYPE, kw_only=True, module=__name__)
        self._version = {kind: model.VERSION for model, kind in self.kinds.items()}
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            Union[tuple(self.kinds.values())])  # noqa: UP007 (a runtime union of classes)

    def decode(self, data: bytes) -> FastEvent:
        try:
            event: FastEvent = self._decoder.decode(data)
        except (msgspec.DecodeError, OverflowError):  # ValidationError is a DecodeError
            raise Fallback from None
        if event.version != self._version[type(event)]:
            raise Fallback  # an old version: its upcasters run on the pydantic path
        return event


__all__ = ["FOLD_MIRRORS", "MIRRORS", "Fallback", "FastEvent", "FastEvents", "convert",
           "decode", "has_payload", "utc_timestamp"]
