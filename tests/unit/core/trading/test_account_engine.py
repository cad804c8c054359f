"""The account engine on the in-memory log: orders decided against the latest tick, resting
orders filled by later ticks in the partition's own transaction, equity marked, and a restart
that resumes where the log says: no fill lost or applied twice, the state equal to a replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.domain import trading
from core.processors.account_engine import AccountEngine
from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_event, encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_796_000_000_000_000_000
ACCOUNT = account_id_for("00000000-0000-4000-8000-00000000a55e")
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                     quote_currency="USD")
REGISTRY = default_registry()


def _log() -> MemoryLog:
    return MemoryLog({s.name: s.partitions for s in CATALOGUE})


def _engine(log: MemoryLog, clock_ns: list[int]) -> AccountEngine:
    return AccountEngine(Settings(env="test"), REGISTRY, log=log,
                         clock=lambda: datetime.fromtimestamp(clock_ns[0] / 1e9, UTC),
                         mark_interval_ms=1_000)


async def _event(log: MemoryLog, topic: str, key: str, payload: EventPayload, n: int) -> None:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{key}/{n}")
    env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                     occurred_at=datetime.fromtimestamp(T0 / 1e9, UTC),
                     correlation_id=event_id, causation_id=None)
    await log.producer(client_id="feed").send_many(topic, [OutRecord(key.encode(), encode(env))])


async def _tick(log: MemoryLog, n: int, bid: str, ask: str, *, at: int) -> None:
    row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(bid), size=5.0,
                  bid=float(bid), ask=float(ask))
    await _event(log, "market.ticks", "BTC-USD",
                 MarketTicksPublished(instrument="BTC-USD", venue="simulator", ticks=(row,)), n)


async def _command(log: MemoryLog, payload: CommandPayload) -> None:
    env = make_command(payload, aggregate_id=ACCOUNT, command_id=uuid.uuid4(),
                       issued_at=datetime.fromtimestamp(T0 / 1e9, UTC))
    await log.producer(client_id="api").send_many(
        "account.commands", [OutRecord(ACCOUNT.encode(), encode(env))])


def _events(log: MemoryLog) -> list[tuple[str, dict[str, object]]]:
    out = []
    for r in log.records("account.events"):
        env = decode_event(r.value or b"")
        out.append((env.type, env.payload))
    return out


def _replayed(log: MemoryLog) -> trading.TradingAccount:
    state = trading.initial(ACCOUNT)
    for r in log.records("account.events"):
        env = decode_event(r.value or b"")
        state = trading.evolve(state, REGISTRY.event_payload(env))
    return state


def _place(client: str, side: str, kind: str, qty: str, limit: str | None = None
           ) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument="BTC-USD", side=side,  # type: ignore[arg-type]
                      type=kind, quantity=Decimal(qty),  # type: ignore[arg-type]
                      limit_price=None if limit is None else Decimal(limit))


async def _open_account(log: MemoryLog, clock: list[int]) -> AccountEngine:
    """A started engine that knows BTC-USD, has opened the account and met one tick at T0."""
    await _event(log, "instrument.events", "BTC-USD", InstrumentRegistered(spec=BTC), 1)
    engine = _engine(log, clock)
    await engine.start()
    await engine.run(until_idle=True)
    await _command(log, OpenAccount(assessment_id=uuid.UUID(
        "00000000-0000-4000-8000-00000000a55e"), user_id=uuid.uuid4(),
        starting_balance=Decimal(10_000), currency="USD"))
    await _tick(log, 1, "100.00", "100.02", at=T0)
    await engine.run(until_idle=True)
    return engine


async def test_orders_fill_at_the_touch_and_resting_ones_on_later_ticks_exactly_once() -> None:
    log = _log()
    clock = [T0 + 1_000_000]
    engine = await _open_account(log, clock)
    await _command(log, _place("m1", "buy", "market", "1"))
    await _command(log, _place("l1", "buy", "limit", "1", "99.00"))
    await engine.run(until_idle=True)
    types = [t for t, _ in _events(log)]
    assert types.count("trading.order-accepted") == 2
    assert types.count("trading.order-filled") == 1  # the market order, at the ask
    fill = next(p for t, p in _events(log) if t == "trading.order-filled")
    assert Decimal(str(fill["price"])) == Decimal("100.02")

    # A later tick trades through the resting limit: filled in the partition's transaction.
    await _tick(log, 2, "98.50", "98.90", at=T0 + 2_000_000_000)
    await engine.run(until_idle=True)
    fills = [p for t, p in _events(log) if t == "trading.order-filled"]
    assert len(fills) == 2 and Decimal(str(fills[1]["price"])) == Decimal("99.00")
    assert "account.equity-marked" in [t for t, _ in _events(log)]
    live_state = next(p.aggregates[ACCOUNT].value for p in engine.partitions.values()
                      if ACCOUNT in p.aggregates)
    assert live_state.positions["BTC-USD"].quantity == Decimal(2)

    # The process dies; an heir resumes from the log: the same ticks are not met again.
    log.crash(*([engine.runner.consumer] if engine.runner.consumer else []),  # type: ignore[list-item]
              *engine.runner.txn.values())  # type: ignore[arg-type]
    heir = _engine(log, clock)
    await heir.start()
    await heir.run(until_idle=True)
    await _tick(log, 3, "98.40", "98.80", at=T0 + 3_000_000_000)
    await heir.run(until_idle=True)
    assert [t for t, _ in _events(log)].count("trading.order-filled") == 2
    heir_state = next(p.aggregates[ACCOUNT].value for p in heir.partitions.values()
                      if ACCOUNT in p.aggregates)
    assert trading.dump(heir_state) == trading.dump(_replayed(log))
    # The balance moves by realized P&L and commissions only; the two buys are one position
    # at their average price.
    state = _replayed(log)
    assert state.balance == Decimal(10_000) + state.realized - state.commissions
    assert state.positions["BTC-USD"].cost == Decimal("199.02")
    await heir.stop()


async def test_an_order_without_a_fresh_quote_is_rejected_and_changes_nothing() -> None:
    log = _log()
    clock = [T0 + 60_000_000_000]  # a minute after the only tick
    engine = await _open_account(log, clock)
    await _command(log, _place("m1", "buy", "market", "1"))
    await _command(log, _place("x1", "buy", "market", "1").model_copy(
        update={"instrument": "NOPE-USD"}))
    await engine.run(until_idle=True)
    rejected = [p for t, p in _events(log) if t == "trading.order-rejected"]
    assert [r["reason"] for r in rejected] == ["stale-quote", "instrument-unknown"]
    assert [t for t, _ in _events(log)] == ["account.opened", "trading.order-rejected",
                                             "trading.order-rejected"]
    await engine.stop()
