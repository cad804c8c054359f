"""Log records to channel messages: pure, so the hub and the tests share it.

A message's sequence is its log position: offset * 1024 + its row in the record (a tick
batch holds at most 1,000 rows). Each channel is fed by one topic and each key lives on one
partition, so a channel's sequence only grows, identical in every gateway instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from ws_gateway.domain.frames import TickEntry
from ws_gateway.domain.messages import event_message

ROWS_PER_OFFSET = 1024


class _Envelope(msgspec.Struct):
    type: str
    aggregate_id: str
    occurred_at: str
    payload: msgspec.Raw


class _Row(msgspec.Struct):
    venue_ts_ns: int
    received_ts_ns: int
    price: float
    size: float
    bid: float | None = None
    ask: float | None = None


class _TickPayload(msgspec.Struct):
    instrument: str
    ticks: list[_Row]


class _Instrument(msgspec.Struct):
    instrument: str


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_TICKS = msgspec.json.Decoder(_TickPayload)
_INSTRUMENT = msgspec.json.Decoder(_Instrument)


@dataclass(frozen=True, slots=True)
class RawTicks:
    """A tick batch before the instrument id and epoch are known."""

    channel: str
    symbol: str
    first_seq: int
    rows: list[_Row]

    def entries(self, *, instrument_id: int, epoch: int) -> list[TickEntry]:
        return [TickEntry(self.channel, instrument_id, epoch, self.first_seq + i, r.venue_ts_ns,
                          r.price, r.size, r.bid, r.ask, r.received_ts_ns)
                for i, r in enumerate(self.rows)]


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    channel: str
    seq: int
    message: bytes  # without the epoch (messages.with_epoch)


def decode_ticks(value: bytes, offset: int) -> RawTicks | None:
    """A `market.ticks` record, or None when it is not a tick batch we can read."""
    try:
        env = _ENVELOPE.decode(value)
        if env.type != "market.ticks-published":
            return None
        payload = _TICKS.decode(env.payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not payload.ticks or len(payload.ticks) > ROWS_PER_OFFSET:
        return None
    return RawTicks(f"market:{payload.instrument}", payload.instrument,
                    offset * ROWS_PER_OFFSET, payload.ticks)


def decode_event(value: bytes, offset: int, *, family: str,
                 public: bool) -> ChannelEvent | None:
    """An event of a market topic (`bars`/`news` channel by instrument) or of a private
    topic (channel by the record's aggregate id, its key: an assessment's events go to
    `assessment:<assessment id>` though most of them name an account too)."""
    try:
        env = _ENVELOPE.decode(value)
        key = _INSTRUMENT.decode(env.payload).instrument if public else env.aggregate_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    channel = f"{family}:{key}"
    seq = offset * ROWS_PER_OFFSET
    return ChannelEvent(channel, seq, event_message(channel=channel, seq=seq,
                                                    event_type=env.type, at=env.occurred_at,
                                                    payload=bytes(env.payload)))
