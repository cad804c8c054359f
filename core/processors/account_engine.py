"""The account engine: the single writer of account partitions, trading in one hop.

It is the account family's decider (`kernel.decider.DeciderRunner`) with the market as
broadcast inputs (`kernel.broadcast`): it reads `market.ticks` (the newest tick per
instrument) and `instrument.events` (every instrument, whole) without a group, and in the
transaction of the account partition:

* decides a command (open, close, place, cancel, modify, halt, resume, settle) against the
  account, the instrument's market and its latest quote (`core.domain.trading`);
* on every tick of an instrument, re-checks the open orders of the partition's accounts that
  hold orders or a position on it and that the quote can make act (`WakeIndex`: their
  limits and stops sorted by level, so a quote inside every band costs a few bisects), and
  marks their equity, at most once per `mark_interval_ns` of tick time per account (a busy
  instrument cannot flood the log).

Tick-driven events are numbered after the account's last event like decided ones; their ids
derive from the tick's place on the log, the row in its batch and the account, and their
clock is the tick's venue time, so acting on the same ticks against the same state gives the
same events. Where each partition stands on the market topics commits with its events, so a
restart resumes exactly there (`kernel.broadcast`).
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from core.domain import rules, trading
from core.domain.accounts import Account, AccountAggregate
from core.domain.trading import Market, Quote, TradingAccount, booked, enforce
from core.domain.trading.state import figures
from core.domain.trading.wake import Wake, expires_ns, wake
from core.processors.market_view import LastTick, MarketView
from core.processors.rules_enforcer import enforce_rules
from core.processors.wake_index import WakeIndex
from kernel.aggregate import DecideContext
from kernel.decider import DeciderRunner
from kernel.decider_state import PartitionState
from kernel.log import Log, LogRecord, TopicPartition
from kernel.runner import Emit
from kernel.settings import Settings
from schemas.account import AccountCommandRejected, AccountOpened, CloseAccount, OpenAccount
from schemas.book import (
    BookOrderCancelled,
    BookOrderRejected,
    BookTimeInForce,
    BookTrade,
    CancelBookOrder,
    SubmitOrder,
)
from schemas.codec import decode_event, encode
from schemas.envelope import (
    CommandEnvelope,
    CommandPayload,
    EventEnvelope,
    EventPayload,
    derive_event_id,
    make_command,
)
from schemas.errors import DecodeError
from schemas.instrument import InstrumentResolved, InstrumentStatus
from schemas.market import MarketNewsPublished, MarketTicksPublished
from schemas.platform import TradingHalted, TradingResumed
from schemas.registry import TypeRegistry
from schemas.rules import AccountKillSwitched, KillAccount, NewsMet
from schemas.trading import (
    AccountEquityMarked,
    CancelOrder,
    CancelReason,
    HaltAccount,
    Liquidity,
    ModifyOrder,
    OrderAccepted,
    OrderCancelRequested,
    OrderRejected,
    PlaceOrder,
    ResumeAccount,
    SettleContract,
)

TICK_CAUSE = uuid.UUID("5b0c7a1e-3d2f-4e8a-9c61-2f7d9e4b8a03")  # fixed forever: tick event ids
# Fixed forever: the ids of the events a contract's resolution gives an account.
RESOLUTION_CAUSE = uuid.UUID("9e2d4c61-7a3b-4f18-b5c2-6d0e8a1f3b97")
DEFAULT_TERMS = trading.Terms()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class EngineContext(DecideContext):
    """What a trading decision may know: the clock in ns, and the market."""

    now_ns: int
    market: Callable[[str], Market | None]
    quote: Callable[[str], Quote | None]
    platform_halted: bool = False  # the admin's platform-wide halt (schemas.platform)


class TradingAggregate:
    """The account aggregate with trading, as the decider runtime drives it."""

    family = "account"
    rejection: type[EventPayload] = AccountCommandRejected

    def __init__(self) -> None:
        self._lifecycle = AccountAggregate()

    def initial(self, aggregate_id: str) -> TradingAccount:
        return trading.initial(aggregate_id)

    def decide(self, command: CommandPayload, state: TradingAccount,
               ctx: DecideContext) -> list[EventPayload]:
        match command:
            case OpenAccount() | CloseAccount():
                status = "closed" if state.status == "failed" else state.status
                view = Account(account_id=state.account_id, status=status)
                opened = self._lifecycle.decide(command, view, ctx)
                at_ns = (ctx.now - EPOCH) // timedelta(microseconds=1) * 1_000
                # The rules' first trading day is the opening's (log time, see decision 0013).
                return [e.model_copy(update={"at_ns": at_ns}) if isinstance(e, AccountOpened)
                        else e for e in opened]
            case HaltAccount():
                return trading.halt(state, command)
            case ResumeAccount():
                if state.rule is not None and state.rule.settled:
                    return []  # a passed or failed phase stays halted
                return trading.resume(state, command)
        assert isinstance(ctx, EngineContext), "trading needs the engine's context"
        # A command after a day boundary starts the day first (recorded: replay folds it).
        day = enforce.day_started(state, ctx.now_ns)
        before: list[EventPayload] = [] if day is None else [day]
        return before + self._trade(command, state, ctx)

    def _trade(self, command: CommandPayload, state: TradingAccount,
               ctx: EngineContext) -> list[EventPayload]:
        match command:
            case KillAccount():
                if state.status != "open":
                    return []
                return [AccountKillSwitched(by=ctx.actor or "unknown", reason=command.reason)]
            case PlaceOrder():
                if ctx.platform_halted and not enforce.reduces(state, command):
                    return [OrderRejected(action="place", client_order_id=command.client_order_id,
                                          reason="trading-halted",
                                          detail="trading is halted platform-wide; only "
                                                 "orders that reduce a position are taken")]
                market = ctx.market(command.instrument)
                quote = ctx.quote(command.instrument)
                placed = trading.place(
                    state, command, quote=quote, market=market,
                    terms=terms_of(state), now_ns=ctx.now_ns,
                    markets=_markets(state, ctx.market))
                refused = enforce.refuse_intent(state, command, placed, quote=quote,
                                                now_ns=ctx.now_ns)
                return placed if refused is None else refused
            case CancelOrder():
                working = state.orders.get(command.order_id)
                market = None if working is None else ctx.market(working.order.instrument)
                if market is not None and market.execution == "book":
                    return booked.request_cancel(state, command)
                return trading.cancel(state, command, now_ns=ctx.now_ns)
            case ModifyOrder():
                working = state.orders.get(command.order_id)
                market = None if working is None else ctx.market(working.order.instrument)
                return trading.modify(state, command, market=market, now_ns=ctx.now_ns)
            case SettleContract():
                return trading.settle(state, command, market=ctx.market(command.instrument),
                                      now_ns=ctx.now_ns)
        raise TypeError(f"the account engine does not handle {command.TYPE}")

    def evolve(self, state: TradingAccount, event: EventPayload) -> TradingAccount:
        return trading.evolve(state, event)

    def dump(self, state: TradingAccount) -> dict[str, Any]:
        return trading.dump(state)

    def load(self, data: dict[str, Any]) -> TradingAccount:
        return trading.load(data)


def terms_of(state: TradingAccount) -> trading.Terms:
    return DEFAULT_TERMS if state.rules is None else trading.terms_from_rules(state.rules)


def _markets(state: TradingAccount, market: Callable[[str], Market | None]
             ) -> dict[str, Market]:
    known = {}
    for symbol in state.positions:
        m = market(symbol)
        if m is not None:
            known[symbol] = m
    return known


class AccountEngine(DeciderRunner[TradingAccount]):
    """The account family's single writer, with the market as broadcast inputs."""

    def __init__(self, settings: Settings, registry: TypeRegistry, *,
                 log: Log | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 max_quote_age_ms: int = 5_000, mark_interval_ms: int = 1_000,
                 tick_warmup: int = 1_000, snapshot_every: int = 10_000) -> None:
        ticks = settings.topic("market.ticks")
        instruments = settings.topic("instrument.events")
        self.book_commands = settings.topic("book.commands")
        self.book_events = settings.topic("book.events")
        self.platform_events = settings.topic("platform.events")
        self.market_events = settings.topic("market.events")
        self.platform_halted = False
        self.view = MarketView(registry, ticks_topic=ticks, instruments_topic=instruments)
        self.max_quote_age_ns = max_quote_age_ms * 1_000_000
        self.mark_interval_ns = mark_interval_ms * 1_000_000
        self._markets: dict[str, Market] = {}
        self._quotes: dict[str, tuple[LastTick, Quote | None]] = {}
        # Per partition and instrument: the accounts holding orders or a position on it,
        # filed by the quote levels and times that can make them act.
        self.watching: dict[int, dict[str, WakeIndex]] = {}
        # Per partition: (next trading day's start, account), rolled on the first tick past it.
        self.days: dict[int, list[tuple[int, str]]] = {}
        self._day_due: dict[int, dict[str, int]] = {}  # what the heap holds per account
        self.assessment_commands = settings.topic("assessment.commands")
        self._enforcing = False
        self._tick_quote: Quote | None = None
        super().__init__(settings, TradingAggregate(), registry, clock=clock, log=log,
                         snapshot_every=snapshot_every,
                         broadcast=[ticks, instruments, self.book_events,
                                    self.platform_events, self.market_events],
                         broadcast_warmup={ticks: tick_warmup, instruments: None,
                                           self.book_events: 0, self.platform_events: None,
                                           self.market_events: 0})

    # -- the market --------------------------------------------------------------------------

    def market(self, symbol: str) -> Market | None:
        known = self._markets.get(symbol)
        if known is None:
            instrument = self.view.instrument(symbol)
            if instrument is None or instrument.spec is None:
                return None
            status: InstrumentStatus = (instrument.status if instrument.status
                                        in ("halted", "resolved") else "active")
            spec = instrument.spec
            known = self._markets[symbol] = trading.market_from_spec(
                spec, status=status, max_quote_age_ns=self.max_quote_age_ns,
                commission_per_unit=spec.commission_per_unit,
                commission_rate=spec.commission_rate, slippage_ticks=spec.slippage_ticks)
        return known

    def quote(self, symbol: str) -> Quote | None:
        last = self.view.last_tick(symbol)
        market = self.market(symbol)
        if last is None or market is None:
            return None
        cached = self._quotes.get(symbol)
        if cached is not None and cached[0] is last:
            return cached[1]
        quote = trading.quote_from_tick(last.row, market, instrument=symbol)
        self._quotes[symbol] = (last, quote)
        return quote

    def context(self, env: CommandEnvelope) -> DecideContext:
        now = self.clock()
        return EngineContext(now=now, command_id=env.command_id, actor=env.actor,
                             now_ns=int(now.timestamp() * 1_000_000_000),
                             market=self.market, quote=self.quote,
                             platform_halted=self.platform_halted)

    # -- ticks -------------------------------------------------------------------------------

    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[Emit]]:
        if record.topic == self.book_events:
            return self.step_book_event(record, due)
        if record.topic == self.platform_events:
            self.follow_platform(record)
            return {}
        if record.topic == self.market_events:
            return self.meet_news(record, due)
        got = self.view.absorb(record)
        if isinstance(got, EventEnvelope):  # an instrument changed: rebuild its market
            self._markets.pop(got.aggregate_id, None)
            self._quotes.pop(got.aggregate_id, None)
        if record.topic == self.view.instruments_topic:
            return self.settle_resolved(record, got, due)
        if not due:
            return {}
        if got is None:
            # Met again behind the view: a partition taken over (an heir) acts on the ticks
            # it missed, in their order and at their times, so a breach while it was down is
            # decided on the tick that caused it. The view keeps its newer quote.
            got = self._ticks_again(record)
            if got is None:
                return {}
        assert isinstance(got, MarketTicksPublished)
        symbol = got.instrument
        out: dict[TopicPartition, list[Emit]] = (
            self.roll_days(due, max(row.venue_ts_ns for row in got.ticks)) if got.ticks else {})
        market = self.market(symbol)
        if market is None:
            return out
        quotes = [(i, q) for i, row in enumerate(got.ticks)
                  if (q := trading.quote_from_tick(row, market, instrument=symbol)) is not None]
        for tp in due:
            pstate = self.partitions.get(tp.partition)
            index = self.watching.get(tp.partition, {}).get(symbol)
            if pstate is None or index is None:
                continue
            emits = out.setdefault(tp, [])
            for row_index, quote in quotes:
                # Only the accounts this quote (or its time) can make act; a fixed order, so
                # the same ticks give the same events.
                for account_id in sorted(index.woken(quote.bid, quote.ask, quote.at_ns)):
                    acted = self._on_tick(pstate, tp.partition, account_id, quote, market,
                                          f"{record.topic}/{record.partition}/{record.offset}/"
                                          f"{row_index}")
                    if acted:
                        emits += acted
                    else:  # nothing happened, so nothing re-filed it: do so (its due passed)
                        self._watch(tp.partition, account_id,
                                    self.current(pstate, account_id).value)
        return {tp: emits for tp, emits in out.items() if emits}

    def _ticks_again(self, record: LogRecord) -> MarketTicksPublished | None:
        try:
            payload = self.registry.event_payload(decode_event(record.value or b""))
        except DecodeError:
            return None  # dead-lettered when the view first met it
        return payload if isinstance(payload, MarketTicksPublished) else None

    def _on_tick(self, pstate: PartitionState[TradingAccount], partition: int,
                 account_id: str, quote: Quote, market: Market, where: str) -> list[Emit]:
        state = self.current(pstate, account_id).value
        now_ns = quote.at_ns
        day = enforce.day_started(state, now_ns)
        payloads: list[EventPayload] = [] if day is None else [day]
        if not self.platform_halted:  # halted platform-wide: no resting order fills
            payloads += trading.on_quote(state, quote, market=market, now_ns=now_ns)
        payloads += trading.expire_day(state, now_ns=now_ns)
        cause = uuid.uuid5(TICK_CAUSE, f"{account_id}@{where}")
        occurred = datetime.fromtimestamp(now_ns / 1e9, UTC)
        self._tick_quote = quote
        try:
            events, emits = self.append(pstate, partition, account_id, payloads,
                                        occurred_at=occurred,
                                        event_id=lambda i: derive_event_id(cause, i),
                                        correlation_id=cause, causation_id=None, actor=None)
            state = self.current(pstate, account_id).value
            if state.positions and state.status == "open":
                marked = self._mark(state, now_ns)
                if marked is not None and self._mark_due(state, marked, now_ns):
                    first = len(events)
                    _, more = self.append(pstate, partition, account_id, [marked],
                                          occurred_at=occurred,
                                          event_id=lambda i: derive_event_id(cause, first + i),
                                          correlation_id=cause, causation_id=None, actor=None)
                    emits += more
        finally:
            self._tick_quote = None
        return emits

    def _mark(self, state: TradingAccount, now_ns: int) -> EventPayload | None:
        """The account marked at its instruments' latest quotes (the tick's own first)."""
        quotes = {s: q for s in state.positions if (q := self.quote(s)) is not None}
        if self._tick_quote is not None:
            quotes[self._tick_quote.instrument] = self._tick_quote
        return trading.mark(state, quotes, markets=_markets(state, self.market),
                            terms=terms_of(state), now_ns=now_ns)

    def _mark_due(self, state: TradingAccount, marked: EventPayload, now_ns: int) -> bool:
        """Record a mark once a `mark_interval` of tick time, and on any tick whose floating
        P&L gives a rule a verdict: a breach is decided on the tick that causes it."""
        if now_ns - state.marked_at_ns >= self.mark_interval_ns:
            return True
        if state.rule is None or state.rules is None or state.rule.settled:
            return False
        assert isinstance(marked, AccountEquityMarked)
        probe = figures(state, sequence=state.seq + 1, at_ns=now_ns, equity=marked.equity,
                        traded=state.traded)
        return any(v.kind in ("warning", "violation")
                   for v in rules.evaluate(state.rules, state.rule, probe))

    def follow_platform(self, record: LogRecord) -> None:
        """The platform-wide trading switch, read whole (every partition obeys it alike)."""
        try:
            payload = self.registry.event_payload(decode_event(record.value or b""))
        except DecodeError:
            return
        if isinstance(payload, TradingHalted):
            self.platform_halted = True
        elif isinstance(payload, TradingResumed):
            self.platform_halted = False

    def meet_news(self, record: LogRecord, due: Collection[TopicPartition]
                  ) -> Mapping[TopicPartition, Sequence[Emit]]:
        """Flagged news on an instrument: recorded (`rules.news-met`) for each account of the
        due partitions that holds it under rules forbidding holding through news; the rules
        judge it there. Ids derive from the account and the news record's place."""
        if not due:
            return {}
        try:
            env = decode_event(record.value or b"")
            payload = self.registry.event_payload(env)
        except DecodeError:
            return {}
        if not isinstance(payload, MarketNewsPublished):
            return {}
        where = f"{record.topic}/{record.partition}/{record.offset}"
        out: dict[TopicPartition, list[Emit]] = {}
        for tp in due:
            pstate = self.partitions.get(tp.partition)
            watching = self.watching.get(tp.partition, {}).get(payload.instrument)
            if pstate is None or not watching:
                continue
            for account_id in sorted(watching.accounts()):
                state = self.current(pstate, account_id).value
                if (state.rules is None or not state.rules.no_news_holding
                        or payload.instrument not in state.positions or state.rule is None
                        or state.rule.settled):
                    continue
                cause = uuid.uuid5(NEWS_CAUSE, f"{account_id}@{where}")
                _, emits = self.append(
                    pstate, tp.partition, account_id,
                    [NewsMet(instrument=payload.instrument, at_ns=payload.at_ns)],
                    occurred_at=datetime.fromtimestamp(payload.at_ns / 1e9, UTC),
                    event_id=partial(derive_event_id, cause), correlation_id=cause,
                    causation_id=None, actor=None)
                out.setdefault(tp, []).extend(emits)
        return out

    # -- contract resolution -----------------------------------------------------------------

    def settle_resolved(self, record: LogRecord, got: object,
                        due: Collection[TopicPartition]
                        ) -> Mapping[TopicPartition, Sequence[Emit]]:
        """On `instrument.resolved`, settle the contract in every account of the due
        partitions that holds orders or a position in it: its orders are cancelled and its
        position closes at the outcome (`trading.settle`).

        A partition taken over behind the others meets the record again after the view has
        folded it (`absorb` gives nothing then), so the record is decoded here once more.
        Event ids derive from the account and the record's place on the log, and the clock
        is the resolution's time: meeting the same record against the same state gives the
        same events, and a record met again after its settlement finds nothing to settle.
        """
        if not due:
            return {}
        try:
            env = got if isinstance(got, EventEnvelope) else decode_event(record.value or b"")
            payload = self.registry.event_payload(env)
        except DecodeError:
            return {}  # met again: dead-lettered when the view first met it
        if not isinstance(payload, InstrumentResolved):
            return {}
        symbol = env.aggregate_id
        market = self.market(symbol)
        if market is None:
            return {}
        command = SettleContract(instrument=symbol, outcome=payload.outcome)
        now_ns = (payload.resolved_at - EPOCH) // timedelta(microseconds=1) * 1_000
        where = f"{record.topic}/{record.partition}/{record.offset}"
        out: dict[TopicPartition, list[Emit]] = {}
        for tp in due:
            pstate = self.partitions.get(tp.partition)
            watching = self.watching.get(tp.partition, {}).get(symbol)
            if pstate is None or not watching:
                continue
            for account_id in sorted(watching.accounts()):  # a fixed order: the same on replay
                state = self.current(pstate, account_id).value
                payloads = trading.settle(state, command, market=market, now_ns=now_ns)
                if not payloads:
                    continue
                cause = uuid.uuid5(RESOLUTION_CAUSE, f"{account_id}@{where}")
                _, emits = self.append(
                    pstate, tp.partition, account_id, payloads,
                    occurred_at=payload.resolved_at,
                    event_id=partial(derive_event_id, cause),
                    correlation_id=env.correlation_id, causation_id=None, actor=None)
                out.setdefault(tp, []).extend(emits)
        return out

    # -- which accounts watch which instrument -------------------------------------------------

    def append(self, pstate: PartitionState[TradingAccount], partition: int,
               aggregate_id: str, payloads: Sequence[EventPayload], **kw: Any
               ) -> tuple[list[EventEnvelope], list[Emit]]:
        """Record `payloads`, then what the rules make of them in the same transaction."""
        self.current(pstate, aggregate_id).value.rule_inputs.clear()
        events, emits = self._record(pstate, partition, aggregate_id, payloads, **kw)
        if payloads and not self._enforcing:
            self._enforcing = True
            try:
                more, sends = enforce_rules(self, pstate, partition, aggregate_id, payloads,
                                            first=len(payloads), **kw)
            finally:
                self._enforcing = False
            events += more
            emits += sends
        return events, emits

    def _record(self, pstate: PartitionState[TradingAccount], partition: int,
                aggregate_id: str, payloads: Sequence[EventPayload], **kw: Any
                ) -> tuple[list[EventEnvelope], list[Emit]]:
        result = super().append(pstate, partition, aggregate_id, payloads, **kw)
        if payloads:
            state = self.current(pstate, aggregate_id).value
            self._watch(partition, aggregate_id, state)
            self._schedule_day(partition, aggregate_id, state)
            result[1].extend(self.to_book(aggregate_id, result[0], payloads))
        return result

    def _schedule_day(self, partition: int, account_id: str, state: TradingAccount) -> None:
        at = enforce.next_day_ns(state)
        scheduled = self._day_due.setdefault(partition, {})
        if at is not None and scheduled.get(account_id) != at:  # once per account and day
            scheduled[account_id] = at
            heapq.heappush(self.days.setdefault(partition, []), (at, account_id))

    def roll_days(self, due: Collection[TopicPartition], now_ns: int
                  ) -> dict[TopicPartition, list[Emit]]:
        """Start the trading day of every account of the due partitions whose next day began
        by `now_ns` (a tick's time), idle accounts too: ids derive from the account and the
        day, so a day is started once whoever meets it first."""
        out: dict[TopicPartition, list[Emit]] = {}
        for tp in due:
            heap = self.days.get(tp.partition)
            pstate = self.partitions.get(tp.partition)
            while heap and pstate is not None and heap[0][0] <= now_ns:
                at, account_id = heapq.heappop(heap)
                if self._day_due.get(tp.partition, {}).get(account_id) == at:
                    del self._day_due[tp.partition][account_id]
                state = self.current(pstate, account_id).value
                day = enforce.day_started(state, now_ns)
                if day is None:
                    continue  # already rolled (a stale entry of the heap)
                cause = uuid.uuid5(DAY_CAUSE, f"{account_id}@{day.day.isoformat()}")
                _, emits = self.append(
                    pstate, tp.partition, account_id, [day],
                    occurred_at=datetime.fromtimestamp(now_ns / 1e9, UTC),
                    event_id=partial(derive_event_id, cause), correlation_id=cause,
                    causation_id=None, actor=None)
                out.setdefault(tp, []).extend(emits)
        return out

    def _watch(self, partition: int, account_id: str, state: TradingAccount) -> None:
        """File the account under what can make it act, per instrument it watches."""
        wanted = set(state.by_instrument) | set(state.positions)
        index = self.watching.setdefault(partition, {})
        for symbol, filed in list(index.items()):
            if symbol not in wanted and account_id in filed:
                filed.remove(account_id)
                if not filed:
                    del index[symbol]
        if not wanted:
            return
        due = expires_ns(state)
        if state.positions and state.status == "open":  # `mark` marks open accounts only
            marking = state.marked_at_ns + self.mark_interval_ns
            due = marking if due is None else min(due, marking)
        for symbol in wanted:
            known = index.get(symbol)
            if known is None:
                known = index[symbol] = WakeIndex()
            known.put(account_id, _with_rules(state, symbol, wake(state, symbol)), due)

    async def load_partitions(self, partitions: list[int]) -> None:
        await super().load_partitions(partitions)
        for p in partitions:
            self.watching[p] = {}
            self.days[p] = []
            self._day_due[p] = {}
            for account_id, versioned in self.partitions[p].aggregates.items():
                self._watch(p, account_id, versioned.value)
                self._schedule_day(p, account_id, versioned.value)

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        await super().revoked(partitions)
        for tp in partitions:
            self.watching.pop(tp.partition, None)
            self.days.pop(tp.partition, None)
            self._day_due.pop(tp.partition, None)

    # -- orders on instruments that execute in a book (issue 11.3) -------------------------------

    def to_book(self, account_id: str, events: Sequence[EventEnvelope],
                payloads: Sequence[EventPayload]) -> list[Emit]:
        """The book commands of orders just accepted, or cancels just requested, on book
        instruments: sent in the transaction that recorded them, so exactly once."""
        out: list[Emit] = []
        for event, payload in zip(events, payloads, strict=True):
            command: CommandPayload
            if isinstance(payload, OrderAccepted):
                order = payload.order
                market = self.market(order.instrument)
                if market is None or market.execution != "book":
                    continue
                symbol = order.instrument
                command = SubmitOrder(order_id=str(order.order_id), account_id=account_id,
                                      side=order.side, price=order.limit_price,
                                      quantity=order.quantity,
                                      time_in_force=_BOOK_TIF[order.time_in_force])
            elif isinstance(payload, OrderCancelRequested):
                state = self.state_of(account_id)
                working = None if state is None else state.orders.get(payload.order_id)
                if working is None:
                    continue
                symbol = working.order.instrument
                command = CancelBookOrder(order_id=str(payload.order_id), account_id=account_id)
            else:
                continue
            env = make_command(command, aggregate_id=symbol,
                               command_id=uuid.uuid5(BOOK_CAUSE, f"{event.event_id}"),
                               issued_at=event.occurred_at,
                               correlation_id=event.correlation_id, actor=f"account:{account_id}")
            out.append(Emit(self.book_commands, symbol.encode(), encode(env)))
        return out

    def state_of(self, account_id: str) -> TradingAccount | None:
        for pstate in self.partitions.values():
            known = pstate.aggregates.get(account_id)
            if known is not None:
                return known.value
        return None

    def step_book_event(self, record: LogRecord, due: Collection[TopicPartition]
                        ) -> Mapping[TopicPartition, Sequence[Emit]]:
        """Book the book's trades and cancellations on the orders of the accounts of the
        partitions due: each account's events numbered after its last, ids derived from the
        book event's id and the account."""
        if not due:
            return {}
        env = decode_event(record.value or b"")
        payload = self.registry.event_payload(env)
        touched: list[tuple[str, str, Liquidity | CancelReason]] = []
        if isinstance(payload, BookTrade):
            touched = [(payload.maker_account_id, payload.maker_order_id, "maker"),
                       (payload.taker_account_id, payload.taker_order_id, "taker")]
        elif isinstance(payload, BookOrderCancelled):
            touched = [(payload.account_id, payload.order_id, _CANCEL[payload.reason])]
        elif isinstance(payload, BookOrderRejected) and payload.action == "submit":
            touched = [(payload.account_id, payload.order_id, "book-refused")]
        out: dict[TopicPartition, list[Emit]] = {}
        now_ns = int(env.occurred_at.timestamp() * 1_000_000_000)
        for account_id, order_ref, what in touched:
            try:
                order_id = uuid.UUID(order_ref)
            except ValueError:
                continue  # a market maker's order
            for tp in due:
                pstate = self.partitions.get(tp.partition)
                if pstate is None or account_id not in pstate.aggregates:
                    continue
                state = pstate.aggregates[account_id].value
                working = state.orders.get(order_id)
                if working is None:
                    continue
                market = self.market(working.order.instrument)
                if market is None:
                    continue
                if isinstance(payload, BookTrade):
                    payloads = booked.fill(state, order_id, price=payload.price,
                                           quantity=payload.quantity,
                                           liquidity=what,  # type: ignore[arg-type]
                                           market=market, now_ns=now_ns)
                else:
                    payloads = booked.cancelled(state, order_id,
                                                reason=what,  # type: ignore[arg-type]
                                                now_ns=now_ns)
                cause = uuid.uuid5(BOOK_CAUSE, f"{account_id}@{env.event_id}")
                _, emits = self.append(pstate, tp.partition, account_id, payloads,
                                       occurred_at=env.occurred_at,
                                       event_id=lambda i, c=cause: derive_event_id(c, i),
                                       correlation_id=env.correlation_id,
                                       causation_id=None, actor=None)
                if emits:
                    out.setdefault(tp, []).extend(emits)
        return out


BOOK_CAUSE = uuid.UUID("c4a7e0d2-8b3f-4c19-a65e-1f2d9b7c3e58")  # fixed forever: book ids
DAY_CAUSE = uuid.UUID("0d7f3b2a-6c41-4e95-b8a2-3f1e9c5d7a64")  # fixed forever: day starts
NEWS_CAUSE = uuid.UUID("a3e1f7c9-2b5d-4e08-9f6a-7c4d1b8e2f35")  # fixed forever: news met
_BOOK_TIF: dict[str, BookTimeInForce] = {"GTC": "gtc", "IOC": "ioc", "FOK": "fok"}
_CANCEL: dict[str, CancelReason] = {"requested": "requested", "unfilled": "ioc-remainder",
                                    "self-trade": "self-trade"}


def _with_rules(state: TradingAccount, symbol: str, levels: Wake) -> Wake:
    """The account's wake on `symbol`, also at the quote that brings a loss rule's verdict."""
    bid_at_most, ask_at_least = enforce.rule_wake(state, symbol)
    if bid_at_most is not None and levels.bid_at_most is not None:
        bid_at_most = max(bid_at_most, levels.bid_at_most)
    if ask_at_least is not None and levels.ask_at_least is not None:
        ask_at_least = min(ask_at_least, levels.ask_at_least)
    return levels._replace(
        bid_at_most=levels.bid_at_most if bid_at_most is None else bid_at_most,
        ask_at_least=levels.ask_at_least if ask_at_least is None else ask_at_least)
