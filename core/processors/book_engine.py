"""The book engine: the single writer of every order book, one per instrument, on the log.

It is the `book` family's decider (`kernel.decider.DeciderRunner`): it owns partitions of
`book.commands` (keyed by symbol), keeps each of their instruments' `Book` in memory, and in
one Kafka transaction per partition appends the records of every call as `book.events` and
commits the command offsets. A restart (or a new owner, which fences the old one) loads the
newest snapshot of the partition and folds only the events after it (`Book.follow`); a
snapshot is written every `snapshot_every` events, right after a committed transaction, cut
into items of bounded size (`core.domain.book_market.snapshot_items`).

Unlike the other deciders it sends no replies and keeps no set of decided command ids: its
commands come from the account engine's and its own transactions (exactly once), and the book
refuses an order id it has seen (`duplicate-order-id`).

Market makers: it reads `market.ticks` and `instrument.events` as broadcast inputs
(`kernel.broadcast`). On a tick of an instrument that executes in a book, at most once per
`quote_interval_ms` of tick time, it sends each simulated maker's `book.quote` (around the
tick's mid) to `book.commands` in the transaction of the instrument's partition, so quotes
are commands on the log like orders, and replaying the log gives the same book.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from core.domain.book_market import (
    BookAggregate,
    BookContext,
    BookState,
    restore_items,
    snapshot_items,
)
from core.processors.market_view import MarketView
from kernel.aggregate import DecideContext
from kernel.decider import DeciderRunner
from kernel.decider_state import PartitionState, Versioned
from kernel.log import Log, LogRecord, TopicPartition, partition_for
from kernel.observability import MESSAGES
from kernel.runner import Emit
from kernel.settings import Settings
from schemas import book as book_schemas
from schemas.book import QuoteBook
from schemas.codec import decode_command, encode
from schemas.envelope import CommandEnvelope, derive_event_id, make_command
from schemas.errors import DecodeError
from schemas.market import MarketTicksPublished
from schemas.registry import TypeRegistry

QUOTE_CAUSE = uuid.UUID("9e2d4b71-0c5a-4f3e-8b16-d7a0c3e5f942")  # fixed forever: quote ids
ACTOR = "book-engine"


@dataclass(frozen=True, kw_only=True)
class MakerConfig:
    """One simulated market maker: its id (its self-trade group) and how it quotes."""

    maker: str = "mm-1"
    spread_ticks: int = 2
    size_lots: int = 1_000
    levels: int = 3


class BookEngine(DeciderRunner[BookState]):
    """Every instrument book of the owned `book.commands` partitions."""

    def __init__(self, settings: Settings, registry: TypeRegistry, *, log: Log | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 makers: Sequence[MakerConfig] = (MakerConfig(),),
                 quote_interval_ms: int = 1_000, tick_warmup: int = 1_000,
                 snapshot_every: int = 10_000, max_batch: int = 500) -> None:
        ticks = settings.topic("market.ticks")
        instruments = settings.topic("instrument.events")
        self.view = MarketView(registry, ticks_topic=ticks, instruments_topic=instruments)
        self.makers = tuple(makers)
        self.quote_interval_ns = quote_interval_ms * 1_000_000
        self._quoted_at: dict[str, int] = {}  # tick time of the last quote sent, per symbol
        assert book_schemas.FAMILY.partitions is not None
        self.partition_count = book_schemas.FAMILY.partitions
        super().__init__(settings, BookAggregate(), registry, clock=clock, log=log,
                         snapshot_every=snapshot_every, max_batch=max_batch,
                         broadcast=[ticks, instruments],
                         broadcast_warmup={ticks: tick_warmup, instruments: None})

    # -- commands ------------------------------------------------------------------------------

    def context(self, env: CommandEnvelope) -> DecideContext:
        known = self.view.instrument(env.aggregate_id)
        grid = None
        if known is not None and known.spec is not None and known.spec.execution == "book":
            grid = (known.spec.tick_size, known.spec.lot_size)
        return BookContext(now=self.clock(), command_id=env.command_id, actor=env.actor,
                           grid=grid)

    def step(self, record: LogRecord) -> Sequence[Emit]:
        """Decide one command: its events only (no reply, no decided-id set; see above)."""
        pstate = self.partitions[record.partition]
        env = decode_command(record.value or b"")
        command = self.registry.command_payload(env)
        if record.key is None or record.key.decode(errors="replace") != env.aggregate_id:
            raise DecodeError("key-mismatch", f"record key {record.key!r} is not the "
                              f"symbol {env.aggregate_id!r}")
        if env.type not in self.carried:
            raise DecodeError("wrong-topic", f"{env.type!r} is not a book command")
        ctx = self.context(env)
        payloads = self.aggregate.decide(command, self.current(pstate, env.aggregate_id).value,
                                         ctx)
        _, out = self.append(
            pstate, record.partition, env.aggregate_id, payloads, occurred_at=ctx.now,
            event_id=lambda i: derive_event_id(env.command_id, i),
            correlation_id=env.correlation_id, causation_id=env.command_id, actor=env.actor)
        MESSAGES.labels(self.name, record.topic, "decided").inc()
        return out

    def book(self, symbol: str) -> BookState | None:
        """The live state of a symbol's book, if an owned partition holds it."""
        for pstate in self.partitions.values():
            known = pstate.aggregates.get(symbol)
            if known is not None:
                return known.value
        return None

    # -- market makers on ticks ----------------------------------------------------------------

    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[Emit]]:
        got = self.view.absorb(record)
        if not isinstance(got, MarketTicksPublished) or not due or not self.makers:
            return {}
        symbol = got.instrument
        known = self.view.instrument(symbol)
        if known is None or known.spec is None or known.spec.execution != "book" or \
                known.status == "halted":
            return {}
        tp = TopicPartition(self.commands_topic,
                            partition_for(symbol.encode(), self.partition_count))
        if tp not in due:
            return {}
        row = got.ticks[-1]
        last = self._quoted_at.get(symbol)
        if last is not None and row.venue_ts_ns - last < self.quote_interval_ns:
            return {}
        mid = (row.bid + row.ask) / 2 if row.bid is not None and row.ask is not None \
            else row.price
        tick = known.spec.tick_size
        reference = (Decimal(repr(mid)) / tick).to_integral_value(ROUND_HALF_EVEN) * tick
        if reference <= 0:
            return {}
        self._quoted_at[symbol] = row.venue_ts_ns
        issued = datetime.fromtimestamp(row.venue_ts_ns / 1e9, UTC)
        where = f"{record.topic}/{record.partition}/{record.offset}"
        emits = []
        for m in self.makers:
            command_id = uuid.uuid5(QUOTE_CAUSE, f"{symbol}:{m.maker}@{where}")
            env = make_command(
                QuoteBook(maker=m.maker, reference=reference, spread_ticks=m.spread_ticks,
                          size_lots=m.size_lots, levels=m.levels),
                aggregate_id=symbol, command_id=command_id, issued_at=issued, actor=ACTOR)
            emits.append(Emit(self.commands_topic, symbol.encode(), encode(env),
                              partition=tp.partition))
        return {tp: emits}

    # -- state and snapshots -------------------------------------------------------------------

    async def load_partitions(self, partitions: list[int]) -> None:
        await self._read_instruments()
        await super().load_partitions(partitions)
        for p in partitions:
            self.partitions[p].decided.clear()  # see the module docstring: none kept

    async def _read_instruments(self) -> None:
        """Fold `instrument.events` up to its end into the view before any command is decided:
        commands come before broadcast records in the runner's loop, and the first command of a
        book opens it on its instrument's grid. (The broadcast consumer meets these records
        again; the view keeps what it has.)"""
        reader = self.log.consumer(client_id=f"{self.name}-instruments")
        await reader.start()
        try:
            tps = await reader.partitions_for(self.view.instruments_topic)
            reader.assign(tps)
            ends = await reader.end_offsets(tps)
            for tp in tps:
                reader.seek(tp, 0)
            while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
                batch = await reader.poll(max_records=1000, timeout=1.0)
                for records in batch.values():
                    for record in records:
                        try:
                            self.view.absorb(record)
                        except (DecodeError, ValueError):
                            continue  # the broadcast step parks it
        finally:
            await reader.stop()

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        await super().revoked(partitions)
        self._quoted_at.clear()  # quote again at the next tick: harmless

    def items_of(self, state: PartitionState[BookState]) -> list[list[Any]]:
        aggregate = self.aggregate
        assert isinstance(aggregate, BookAggregate)
        items: list[list[Any]] = []
        for symbol, versioned in sorted(state.aggregates.items()):
            items += snapshot_items(symbol, versioned.version, versioned.value, aggregate)
        return items

    def state_from_items(self, items: list[list[Any]], *,
                         next_event_offset: int) -> PartitionState[BookState]:
        aggregate = self.aggregate
        assert isinstance(aggregate, BookAggregate)
        state: PartitionState[BookState] = PartitionState(next_event_offset=next_event_offset)
        for symbol, (version, value) in restore_items(items, aggregate).items():
            state.aggregates[symbol] = Versioned(version, value)
        return state
