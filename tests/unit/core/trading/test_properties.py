"""Random order and quote streams: money is conserved exactly, replay rebuilds the state.

At every step of a random stream of places, quotes, cancels, modifies, expiries, halts and
binary settlements:
- cash + every position marked at any price == starting balance + the sum over fills of
  -(signed quantity x price) - commissions + settlements + open quantity x that price, to
  the last digit (Decimal), and balance == starting balance + realized - commissions;
- a step never changes the state it is given;
- a quote that does not cross the account's `wake` gives no events, and `expire_day` acts
  exactly when `expires_ns` has come (the engine skips accounts on that promise);
and at the end the events replayed from the initial state, or from a JSON snapshot taken
mid-stream plus the tail, give the live state.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from core.domain.trading import (
    Quote,
    TradingAccount,
    cancel,
    dump,
    evolve,
    expire_day,
    halt,
    initial,
    load,
    modify,
    on_quote,
    place,
    resume,
    settle,
)
from core.domain.trading.wake import expires_ns, wake
from schemas.envelope import EventPayload
from schemas.trading import (
    CancelOrder,
    ContractSettled,
    HaltAccount,
    ModifyOrder,
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
    ResumeAccount,
    SettleContract,
)
from tests.unit.core.trading.support import ACCOUNT, BTC, NS, OPENED, START, TERMS, YES, D

MARKETS = {"BTC-USD": BTC, "RAIN-NYC": YES}

instruments = st.sampled_from(["BTC-USD", "RAIN-NYC"])
places = st.tuples(st.just("place"), instruments, st.sampled_from(["buy", "sell"]),
                   st.sampled_from(["market", "limit", "stop", "stop-limit"]),
                   st.integers(1, 40),  # lots (x a scale per instrument)
                   st.integers(-6, 6),  # limit/stop offset from the touch, in ticks
                   st.sampled_from(["GTC", "IOC", "FOK", "DAY"]),
                   st.booleans(), st.booleans())  # stop-loss, take-profit
quotes = st.tuples(st.just("quote"), instruments, st.integers(-8, 8), st.integers(0, 3),
                   st.none() | st.integers(1, 30))
cancels = st.tuples(st.just("cancel"), st.integers(0, 50))
modifies = st.tuples(st.just("modify"), st.integers(0, 50), st.integers(1, 40),
                     st.integers(-6, 6))
others = st.sampled_from([("expire",), ("halt",), ("resume",), ("settle", 0), ("settle", 1)])
actions = st.lists(st.one_of(quotes, quotes, places, places, cancels, modifies, others),
                   min_size=1, max_size=40)
price_sets = st.lists(st.tuples(st.integers(1, 200_000), st.integers(1, 99)), min_size=1,
                      max_size=3)


class Ledger:
    """What the fills say happened, kept apart from the domain's own arithmetic."""

    def __init__(self) -> None:
        self.cash = START
        self.open: dict[str, Decimal] = {}

    def record(self, event: EventPayload) -> None:
        if isinstance(event, OrderFilled):
            signed = event.quantity if event.side == "buy" else -event.quantity
            self.cash += -signed * event.price - event.commission
            self.open[event.instrument] = self.open.get(event.instrument, D(0)) + signed
        elif isinstance(event, ContractSettled):
            self.cash += event.quantity * event.outcome
            self.open[event.instrument] -= event.quantity


def check_money(state: TradingAccount, ledger: Ledger,
                prices: list[tuple[int, int]]) -> None:
    assert state.balance == START + state.realized - state.commissions
    for instrument, position in state.positions.items():
        assert position.quantity == ledger.open.get(instrument, 0), instrument
    for btc, rain in prices:
        at = {"BTC-USD": D(btc) / 2, "RAIN-NYC": D(rain) / 100}
        marked = state.balance + sum((p.unrealized(at[s]) for s, p in state.positions.items()),
                                     D(0))
        expected = ledger.cash + sum((q * at[s] for s, q in ledger.open.items()), D(0))
        assert marked == expected


def _touch(instrument: str, ticks: int, spread: int, size: int | None, now: int) -> Quote:
    if instrument == "BTC-USD":
        bid = D(60000) + D(ticks) * BTC.tick_size * 20
        depth = None if size is None else D(size) / 10
        return Quote(instrument, bid, bid + spread * BTC.tick_size, depth, depth, now)
    bid = D("0.50") + D(ticks) * YES.tick_size * 5
    depth = None if size is None else D(size) * 10
    return Quote(instrument, bid, bid + spread * YES.tick_size, depth, depth, now)


def _command(action: tuple[Any, ...], number: int, q: Quote) -> PlaceOrder:
    _, instrument, side, kind, lots, offset, tif, with_sl, with_tp = action
    market = MARKETS[instrument]
    tick = market.tick_size
    quantity = D(lots) * (D("0.05") if instrument == "BTC-USD" else D(5))
    touch = q.ask if side == "buy" else q.bid
    level = max(touch + offset * tick, tick)
    if market.contract == "binary":
        level = min(level, 1 - tick)
    fields: dict[str, Any] = {
        "client_order_id": f"c{number}", "instrument": instrument, "side": side,
        "type": kind, "quantity": quantity, "time_in_force": tif}
    if kind in ("limit", "stop-limit"):
        fields["limit_price"] = level
    if kind in ("stop", "stop-limit"):
        fields["stop_price"] = level
    sign = 1 if side == "buy" else -1
    if with_sl and level - sign * 10 * tick > 0:
        fields["stop_loss"] = level - sign * 10 * tick
    if with_tp and level + sign * 10 * tick > 0:
        fields["take_profit"] = level + sign * 10 * tick
    for name in ("stop_loss", "take_profit"):
        if market.contract == "binary" and fields.get(name, 0) >= 1:
            del fields[name]
    return PlaceOrder(**fields)


def run(stream: list[tuple[Any, ...]], prices: list[tuple[int, int]],
        cut: int) -> tuple[TradingAccount, list[EventPayload], dict[str, Any] | None]:
    state = initial(ACCOUNT)
    log: list[EventPayload] = [OPENED]
    evolve(state, OPENED)
    ledger = Ledger()
    latest: dict[str, Quote] = {
        "BTC-USD": _touch("BTC-USD", 0, 1, None, NS), "RAIN-NYC": _touch("RAIN-NYC", 0, 1,
                                                                         None, NS)}
    known: list[Any] = []
    snapshot = None
    now = NS
    for number, action in enumerate(stream):
        now += 250_000_000
        before = dump(state)
        events: list[EventPayload]
        match action[0]:
            case "quote":
                q = _touch(action[1], *action[2:], now)
                latest[action[1]] = q
                asleep = not wake(state, action[1]).crossed(q)
                events = on_quote(state, q, market=MARKETS[action[1]], now_ns=now)
                assert not (asleep and events), "a quote outside the wake acted"
            case "place":
                q = latest[action[1]]
                events = place(state, _command(action, number, q), quote=q,
                               market=MARKETS[action[1]], terms=TERMS, now_ns=now,
                               markets=MARKETS)
            case "cancel" if known:
                events = cancel(state, CancelOrder(order_id=known[action[1] % len(known)]),
                                now_ns=now)
            case "modify" if known:
                order_id = known[action[1] % len(known)]
                working = state.orders.get(order_id)
                fields: dict[str, Any] = {"quantity": D(action[2]) * (
                    D("0.05") if working is None or working.order.instrument == "BTC-USD"
                    else D(5))}
                if working is not None and working.limit_price is not None:
                    tick = MARKETS[working.order.instrument].tick_size
                    fields["limit_price"] = max(working.limit_price + action[3] * tick, tick)
                market = MARKETS[working.order.instrument] if working is not None else BTC
                events = modify(state, ModifyOrder(order_id=order_id, **fields),
                                market=market, now_ns=now)
            case "expire":
                now += 86_400 * 10**9
                latest = {s: Quote(s, q.bid, q.ask, q.bid_size, q.ask_size, now)
                          for s, q in latest.items()}
                due = expires_ns(state)
                early = expire_day(state, now_ns=now - 86_400 * 10**9)
                assert not early or (due is not None and now - 86_400 * 10**9 >= due)
                events = expire_day(state, now_ns=now)
                assert bool(events) == (due is not None and now >= due)
            case "halt":
                events = halt(state, HaltAccount(reason="test"))
            case "resume":
                events = resume(state, ResumeAccount(reason="test"))
            case "settle":
                events = settle(state, SettleContract(instrument="RAIN-NYC",
                                                      outcome=action[1]),
                                market=YES, now_ns=now)
            case _:
                events = []
        assert dump(state) == before, "a step changed the state it was given"
        for event in events:
            evolve(state, event)
            ledger.record(event)
            if isinstance(event, OrderAccepted):
                known.append(event.order_id)
        log.extend(events)
        check_money(state, ledger, prices)
        if number == cut:
            snapshot = json.loads(json.dumps(dump(state)))
            snapshot_at = len(log)
            snapshot = {"state": snapshot, "at": snapshot_at}
    return state, log, snapshot


@settings(max_examples=120, deadline=None)
@for_all(actions, price_sets, st.integers(0, 40))
def test_money_is_conserved_and_replay_rebuilds_the_state(
        stream: list[tuple[Any, ...]], prices: list[tuple[int, int]], cut: int) -> None:
    live, log, snapshot = run(stream, prices, cut)

    replayed = initial(ACCOUNT)
    for event in log:
        evolve(replayed, event)
    assert dump(replayed) == dump(live)

    if snapshot is not None:
        restored = load(snapshot["state"])
        for event in log[snapshot["at"]:]:
            evolve(restored, event)
        assert dump(restored) == dump(live)
    assert dump(load(json.loads(json.dumps(dump(live))))) == dump(live)


@settings(max_examples=60, deadline=None)
@for_all(st.lists(places, min_size=1, max_size=15), st.sampled_from([0, 1]), price_sets)
def test_settling_a_binary_contract_at_zero_or_one_keeps_the_identity(
        orders: list[tuple[Any, ...]], outcome: int, prices: list[tuple[int, int]]) -> None:
    stream: list[tuple[Any, ...]] = [
        ("place", "RAIN-NYC", *o[2:]) for o in orders]
    stream.insert(len(stream) // 2, ("quote", "RAIN-NYC", 3, 1, None))
    stream.append(("settle", outcome))
    live, _, _ = run(stream, prices, -1)
    assert "RAIN-NYC" not in live.positions
    assert not live.by_instrument.get("RAIN-NYC")
