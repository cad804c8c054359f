"""An account engine on the in-memory log with one account trading under a RuleSet."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.domain import trading
from core.processors.account_engine import AccountEngine
from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.tier import RuleSet
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder

T0 = 1_796_000_000_000_000_000  # Monday 2026-11-30 00:53:20 UTC
MS = 1_000_000
DAY = 86_400_000 * MS
ASSESSMENT = uuid.UUID("00000000-0000-4000-8000-00000000a55e")
ACCOUNT = account_id_for(str(ASSESSMENT))
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                     quote_currency="USD")
REGISTRY = default_registry()
RULES = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))


class Desk:
    """The log, the engine, a clock, and numbered feeds of ticks and commands."""

    def __init__(self) -> None:
        self.log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
        self.clock = [T0]
        self.ticks = 0
        self.engine = self.new_engine()

    def new_engine(self) -> AccountEngine:
        return AccountEngine(Settings(env="test"), REGISTRY, log=self.log,
                             clock=lambda: datetime.fromtimestamp(self.clock[0] / 1e9, UTC),
                             mark_interval_ms=1_000)

    async def event(self, topic: str, key: str, payload: EventPayload, n: int) -> None:
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{key}/{n}")
        env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                         occurred_at=datetime.fromtimestamp(T0 / 1e9, UTC),
                         correlation_id=event_id, causation_id=None)
        await self.log.producer(client_id="feed").send_many(
            topic, [OutRecord(key.encode(), encode(env))])

    async def tick(self, bid: str, ask: str, *, at: int, again: bool = False) -> None:
        """One tick row at `at` (ns); `again` sends the previous record's twin."""
        if not again:
            self.ticks += 1
        self.clock[0] = at
        row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(bid), size=1000.0,
                      bid=float(bid), ask=float(ask))
        await self.event("market.ticks", "BTC-USD", MarketTicksPublished(
            instrument="BTC-USD", venue="simulator", ticks=(row,)), self.ticks)

    async def command(self, payload: CommandPayload, *, actor: str | None = None) -> None:
        env = make_command(payload, aggregate_id=ACCOUNT, command_id=uuid.uuid4(),
                           issued_at=datetime.fromtimestamp(self.clock[0] / 1e9, UTC),
                           actor=actor)
        await self.log.producer(client_id="api").send_many(
            "account.commands", [OutRecord(ACCOUNT.encode(), encode(env))])

    async def open(self, rules: RuleSet = RULES, *, bid: str = "100.00",
                   ask: str = "100.02") -> None:
        await self.event("instrument.events", "BTC-USD", InstrumentRegistered(spec=BTC), 1)
        await self.engine.start()
        await self.engine.run(until_idle=True)
        await self.command(OpenAccount(assessment_id=ASSESSMENT, user_id=uuid.uuid4(),
                                       starting_balance=Decimal(10_000), currency="USD",
                                       rules=rules))
        await self.tick(bid, ask, at=T0)
        await self.run()

    async def run(self) -> None:
        await self.engine.run(until_idle=True)

    async def crash_and_heir(self) -> None:
        engine = self.engine
        self.log.crash(*([engine.runner.consumer] if engine.runner.consumer else []),  # type: ignore[list-item]
                       *engine.runner.txn.values())  # type: ignore[arg-type]
        self.engine = self.new_engine()
        await self.engine.start()
        await self.run()

    def envelopes(self) -> list[Any]:
        return [decode_event(r.value or b"") for r in self.log.records("account.events")]

    def types(self) -> list[str]:
        return [e.type for e in self.envelopes()]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.envelopes() if e.type == type_]

    def assessment_commands(self) -> list[Any]:
        return [decode_command(r.value or b"") for r in self.log.records("assessment.commands")]

    def state(self) -> trading.TradingAccount:
        return next(p.aggregates[ACCOUNT].value for p in self.engine.partitions.values()
                    if ACCOUNT in p.aggregates)

    def replayed(self) -> tuple[trading.TradingAccount, list[Any]]:
        """The account folded from its log, and the rule inputs the fold met, in order."""
        state = trading.initial(ACCOUNT)
        inputs: list[Any] = []
        for env in self.envelopes():
            state = trading.evolve(state, REGISTRY.event_payload(env))
            inputs += [given for _, given in state.rule_inputs]
            state.rule_inputs.clear()
        return state, inputs


def place(client: str, side: str, qty: str, *, kind: str = "market", limit: str | None = None,
          stop_loss: str | None = None) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument="BTC-USD", side=side,  # type: ignore[arg-type]
                      type=kind, quantity=Decimal(qty),  # type: ignore[arg-type]
                      limit_price=None if limit is None else Decimal(limit),
                      stop_loss=None if stop_loss is None else Decimal(stop_loss))
