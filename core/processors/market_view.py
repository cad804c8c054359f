"""What the account engine knows of the market: every instrument (spec and status, folded
from `instrument.events` whole) and the latest quote of each (from `market.ticks`).

Both are broadcast inputs of the engine (`kernel.broadcast`): the engine's one consumer may be
rewound when it takes over a partition that stands behind the others, so a record older than
what the view holds (by partition offset: an instrument's events and an instrument's ticks
each live on one partition) leaves the view alone, and `absorb` says so by returning nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.instruments import Instrument, InstrumentAggregate
from kernel.log import LogRecord, TopicPartition
from schemas.codec import decode_event
from schemas.envelope import EventEnvelope
from schemas.errors import DecodeError
from schemas.market import MarketTicksPublished, TickRow
from schemas.registry import TypeRegistry


@dataclass(frozen=True, slots=True)
class LastTick:
    """The newest tick of an instrument and where it came from."""

    row: TickRow
    at: tuple[str, int, int]  # topic, partition, offset of its batch


class MarketView:
    def __init__(self, registry: TypeRegistry, *, ticks_topic: str,
                 instruments_topic: str) -> None:
        self.registry = registry
        self.ticks_topic = ticks_topic
        self.instruments_topic = instruments_topic
        self.instruments: dict[str, Instrument] = {}
        self.ticks: dict[str, LastTick] = {}
        self._folded: dict[TopicPartition, int] = {}  # newest offset taken, per partition
        self._aggregate = InstrumentAggregate()

    def absorb(self, record: LogRecord) -> MarketTicksPublished | EventEnvelope | None:
        """Take a broadcast record into the view. Return the tick batch or the instrument
        event it was (for the engine to act on), or None if the view already had it.
        Raise `DecodeError` on a record that is neither (the runner dead-letters it)."""
        if record.offset <= self._folded.get(record.tp, -1):
            return None
        env = decode_event(record.value or b"")
        payload = self.registry.event_payload(env)
        if record.topic == self.ticks_topic:
            if not isinstance(payload, MarketTicksPublished):
                raise DecodeError("wrong-topic", f"{env.type!r} on {record.topic}")
            at = (record.topic, record.partition, record.offset)
            self.ticks[payload.instrument] = LastTick(payload.ticks[-1], at)
            self._folded[record.tp] = record.offset
            return payload
        if record.topic == self.instruments_topic:
            symbol = env.aggregate_id
            current = self.instruments.get(symbol) or self._aggregate.initial(symbol)
            self.instruments[symbol] = self._aggregate.evolve(current, payload)
            self._folded[record.tp] = record.offset
            return env
        raise DecodeError("wrong-topic", f"the market view does not read {record.topic}")

    def instrument(self, symbol: str) -> Instrument | None:
        known = self.instruments.get(symbol)
        return None if known is None or known.spec is None else known

    def last_tick(self, symbol: str) -> LastTick | None:
        return self.ticks.get(symbol)
