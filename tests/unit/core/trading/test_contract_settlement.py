"""The account engine on the in-memory log: a prediction contract's resolution settles every
account holding it (orders cancelled, position closed at 1 or 0, P&L booked) exactly once,
and per-instrument commission and slippage from the instrument's spec reach the fills."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.domain import trading
from core.processors.account_engine import AccountEngine
from kernel.log import LogRecord, OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_event, encode
from schemas.envelope import CommandPayload, EventEnvelope, EventPayload, make_command, make_event
from schemas.instrument import (
    InstrumentChanges,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentSpec,
    InstrumentUpdated,
)
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder

pytestmark = pytest.mark.asyncio(loop_scope="session")

D = Decimal
T0 = 1_796_000_000_000_000_000
RESOLVED_AT = datetime.fromtimestamp(T0 / 1e9 + 30, UTC)
ASSESSMENTS = ("00000000-0000-4000-8000-00000000001a", "00000000-0000-4000-8000-00000000002b")
LONG, SHORT = (account_id_for(a) for a in ASSESSMENTS)
RAIN = InstrumentSpec(symbol="PM:RAIN-NYC", venue="polymarket", asset_class="prediction",
                      tick_size=D("0.01"), lot_size=D(1), quote_currency="USD",
                      commission_per_unit=D("0.01"))
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=D("0.01"), lot_size=D("0.001"), quote_currency="USD",
                     commission_per_unit=D("0.5"), commission_rate=D("0.001"), slippage_ticks=3)
REGISTRY = default_registry()


def _log() -> MemoryLog:
    return MemoryLog({s.name: s.partitions for s in CATALOGUE})


def _engine(log: MemoryLog) -> AccountEngine:
    return AccountEngine(Settings(env="test"), REGISTRY, log=log,
                         clock=lambda: datetime.fromtimestamp((T0 + 1_000_000) / 1e9, UTC))


def _envelope(key: str, payload: EventPayload, n: int) -> EventEnvelope:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{payload.TYPE}/{n}")
    return make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                      occurred_at=datetime.fromtimestamp(T0 / 1e9, UTC),
                      correlation_id=event_id, causation_id=None)


async def _send(log: MemoryLog, topic: str, env: EventEnvelope) -> None:
    await log.producer(client_id="feed").send_many(
        topic, [OutRecord(env.aggregate_id.encode(), encode(env))])


async def _tick(log: MemoryLog, symbol: str, n: int, bid: str, ask: str) -> None:
    row = TickRow(venue_ts_ns=T0, received_ts_ns=T0, price=float(bid), size=0.0,
                  bid=float(bid), ask=float(ask))
    await _send(log, "market.ticks", _envelope(symbol, MarketTicksPublished(
        instrument=symbol, venue="simulator", ticks=(row,)), n))


async def _command(log: MemoryLog, account: str, payload: CommandPayload) -> None:
    env = make_command(payload, aggregate_id=account, command_id=uuid.uuid4(),
                       issued_at=datetime.fromtimestamp(T0 / 1e9, UTC))
    await log.producer(client_id="api").send_many(
        "account.commands", [OutRecord(account.encode(), encode(env))])


def _order(client: str, symbol: str, side: str, qty: str, limit: str | None = None
           ) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument=symbol, side=side,  # type: ignore[arg-type]
                      type="market" if limit is None else "limit", quantity=D(qty),
                      limit_price=None if limit is None else D(limit))


def _events(log: MemoryLog, account: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for r in log.records("account.events"):
        env = decode_event(r.value or b"")
        if env.aggregate_id == account:
            out.append((env.type, env.payload))
    return out


def _replayed(log: MemoryLog, account: str) -> trading.TradingAccount:
    state = trading.initial(account)
    for r in log.records("account.events"):
        env = decode_event(r.value or b"")
        if env.aggregate_id == account:
            state = trading.evolve(state, REGISTRY.event_payload(env))
    return state


def _live(engine: AccountEngine, account: str) -> trading.TradingAccount:
    return next(p.aggregates[account].value for p in engine.partitions.values()
                if account in p.aggregates)


async def _started(log: MemoryLog, *specs: InstrumentSpec) -> AccountEngine:
    """An engine that knows `specs`, with both accounts open at 1,000 USD."""
    for spec in specs:
        await _send(log, "instrument.events",
                    _envelope(spec.symbol, InstrumentRegistered(spec=spec), 1))
    engine = _engine(log)
    await engine.start()
    await engine.run(until_idle=True)
    for n, (account, assessment) in enumerate(zip((LONG, SHORT), ASSESSMENTS, strict=True)):
        await _command(log, account, OpenAccount(
            assessment_id=uuid.UUID(assessment), user_id=uuid.UUID(int=100 + n),
            starting_balance=D(1_000), currency="USD"))
    await engine.run(until_idle=True)
    return engine


async def _holding_rain(log: MemoryLog) -> AccountEngine:
    """LONG bought 10 at 0.62 and rests a bid for 5 at 0.50; SHORT sold 10 at 0.60."""
    engine = await _started(log, RAIN)
    await _tick(log, RAIN.symbol, 1, "0.60", "0.62")
    await engine.run(until_idle=True)
    await _command(log, LONG, _order("yes-1", RAIN.symbol, "buy", "10"))
    await _command(log, LONG, _order("yes-2", RAIN.symbol, "buy", "5", "0.50"))
    await _command(log, SHORT, _order("no-1", RAIN.symbol, "sell", "10"))
    await engine.run(until_idle=True)
    assert _live(engine, LONG).positions[RAIN.symbol].cost == D("6.20")
    assert _live(engine, SHORT).positions[RAIN.symbol].cost == D("-6.00")
    # The instrument's commission: 0.01 per unit, 0.10 for each side's 10.
    assert _live(engine, LONG).balance == _live(engine, SHORT).balance == D("999.90")
    return engine


def _resolution(outcome: int) -> EventEnvelope:
    return _envelope(RAIN.symbol, InstrumentResolved(outcome=outcome,  # type: ignore[arg-type]
                                                     source="admin",
                                                     resolved_at=RESOLVED_AT), 2)


@pytest.mark.parametrize(("outcome", "long_balance", "short_balance"), [
    (1, D("1003.70"), D("995.90")),  # 999.90 + 10 x (1 - 0.62); 999.90 - 10 x (1 - 0.60)
    (0, D("993.70"), D("1005.90")),  # 999.90 - 10 x 0.62;        999.90 + 10 x 0.60
])
async def test_a_resolution_settles_long_and_short_at_the_outcome_once(
        outcome: int, long_balance: Decimal, short_balance: Decimal) -> None:
    log = _log()
    engine = await _holding_rain(log)
    await _send(log, "instrument.events", _resolution(outcome))
    await engine.run(until_idle=True)

    for account, balance, quantity in ((LONG, long_balance, "10"),
                                       (SHORT, short_balance, "-10")):
        events = _events(log, account)
        settled = [p for t, p in events if t == "trading.contract-settled"]
        assert len(settled) == 1 and settled[0]["outcome"] == outcome
        assert D(str(settled[0]["quantity"])) == D(quantity)
        state = _live(engine, account)
        assert state.balance == balance
        assert RAIN.symbol not in state.positions and not state.orders
        assert trading.dump(state) == trading.dump(_replayed(log, account))
    # The resting bid is cancelled by the settlement, nothing else is.
    cancelled = [p for t, p in _events(log, LONG) if t == "trading.order-cancelled"]
    assert [c["reason"] for c in cancelled] == ["contract-settled"]
    change = [p for t, p in _events(log, LONG) if t == "account.balance-changed"][-1]
    assert change["cause"] == "settlement"
    assert D(str(change["delta"])) == long_balance - D("999.90")

    # The same resolution delivered again (a second record of the same event) settles nothing.
    before = len(log.records("account.events"))
    await _send(log, "instrument.events", _resolution(outcome))
    await engine.run(until_idle=True)
    assert len(log.records("account.events")) == before

    # An heir resumes after the settlement: nothing is settled twice, its state is the replay.
    log.crash(*([engine.runner.consumer] if engine.runner.consumer else []),  # type: ignore[list-item]
              *engine.runner.txn.values())  # type: ignore[arg-type]
    heir = _engine(log)
    await heir.start()
    await heir.run(until_idle=True)
    assert len(log.records("account.events")) == before
    for account in (LONG, SHORT):
        assert trading.dump(_live(heir, account)) == trading.dump(_replayed(log, account))

    # No order is taken on a resolved contract.
    await _tick(log, RAIN.symbol, 2, "0.98", "0.99")
    await _command(log, LONG, _order("late", RAIN.symbol, "buy", "1"))
    await heir.run(until_idle=True)
    rejected = [p for t, p in _events(log, LONG) if t == "trading.order-rejected"]
    assert [r["reason"] for r in rejected] == ["instrument-resolved"]
    await heir.stop()


async def test_a_resolution_met_before_its_settlement_committed_settles_on_the_heir() -> None:
    log = _log()
    engine = await _holding_rain(log)
    await engine.stop()  # gone before the resolution arrives
    await _send(log, "instrument.events", _resolution(1))
    heir = _engine(log)
    await heir.start()
    await heir.run(until_idle=True)
    assert [t for t, _ in _events(log, LONG)].count("trading.contract-settled") == 1
    assert _live(heir, LONG).balance == D("1003.70")
    assert trading.dump(_live(heir, SHORT)) == trading.dump(_replayed(log, SHORT))
    await heir.stop()


async def test_a_market_order_pays_the_instruments_commission_and_slips_its_ticks() -> None:
    log = _log()
    engine = await _started(log, BTC)
    await _tick(log, BTC.symbol, 1, "100.00", "100.02")
    await engine.run(until_idle=True)
    await _command(log, LONG, _order("b1", BTC.symbol, "buy", "2"))
    await engine.run(until_idle=True)
    fill = next(p for t, p in _events(log, LONG) if t == "trading.order-filled")
    assert D(str(fill["price"])) == D("100.05")  # the ask, 3 ticks of 0.01 worse
    # 0.5 per unit x 2 + 0.1 % of 2 x 100.05
    assert D(str(fill["commission"])) == D("1.2001")
    assert _live(engine, LONG).balance == D("998.7999")

    # Costs changed by an update reach the next fill: the touch, no commission.
    await _send(log, "instrument.events", _envelope(BTC.symbol, InstrumentUpdated(
        changes=InstrumentChanges(commission_per_unit=D(0), commission_rate=D(0),
                                  slippage_ticks=0)), 2))
    await engine.run(until_idle=True)
    await _command(log, LONG, _order("b2", BTC.symbol, "buy", "1"))
    await engine.run(until_idle=True)
    fills = [p for t, p in _events(log, LONG) if t == "trading.order-filled"]
    assert D(str(fills[1]["price"])) == D("100.02") and D(str(fills[1]["commission"])) == 0
    await engine.stop()


async def test_a_partition_behind_the_view_settles_on_a_resolution_the_view_already_holds(
) -> None:
    # A partition taken over behind the others meets the record after the shared view has
    # folded it (`absorb` answers nothing then): it must settle all the same.
    log = _log()
    engine = await _holding_rain(log)
    await _send(log, "instrument.events", _resolution(0))
    record = log.records("instrument.events")[-1]
    assert engine.view.absorb(record) is not None
    due = [TopicPartition("account.commands", p) for p in sorted(engine.partitions)]
    out = engine.step_broadcast(record, due)
    settled = [decode_event(e.value).aggregate_id for emits in out.values() for e in emits
               if decode_event(e.value).type == "trading.contract-settled"]
    assert sorted(settled) == sorted([LONG, SHORT])
    assert _live(engine, LONG).balance == D("993.70")
    await engine.stop()


async def test_an_unreadable_instrument_record_met_again_settles_nothing_and_raises_nothing(
) -> None:
    log = _log()
    engine = await _holding_rain(log)
    folded = max(offset for tp, offset in engine.view._folded.items()
                 if tp.topic == "instrument.events")
    junk = LogRecord("instrument.events", 0, folded, b"RAIN", b"not json", (), 0)
    engine.view._folded[junk.tp] = max(engine.view._folded.get(junk.tp, -1), folded)
    due = [TopicPartition("account.commands", p) for p in sorted(engine.partitions)]
    assert engine.step_broadcast(junk, due) == {}
    await engine.stop()
