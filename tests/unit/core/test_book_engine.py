"""The book engine on the in-memory log: orders through `book.commands` give the trades the
pure book gives; a restart from a snapshot and the events after it holds the same book as a
full replay; a crash in the middle of a batch loses and doubles no trade; market makers quote
through the log; the book is never left crossed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.domain.book import Book
from core.domain.book_market import BookAggregate, BookState
from core.domain.book_types import Fill, Place, Result
from core.processors.book_engine import BookEngine, MakerConfig
from kernel.log import OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.book import CancelBookOrder, SubmitOrder
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_796_000_000_000_000_000
SYMBOL = "GAME-1"
SPEC = InstrumentSpec(symbol=SYMBOL, venue="internal", asset_class="index",
                      tick_size=Decimal("0.5"), lot_size=Decimal("1"), quote_currency="USD",
                      execution="book")
REGISTRY = default_registry()
AGGREGATE = BookAggregate()


class Crash(BaseException):  # not caught by the runner: a process dying
    pass


def _log() -> MemoryLog:
    return MemoryLog({s.name: s.partitions for s in CATALOGUE})


def _engine(log: MemoryLog, **kw: Any) -> BookEngine:
    kw.setdefault("makers", ())
    return BookEngine(Settings(env="test"), REGISTRY, log=log,
                      clock=lambda: datetime.fromtimestamp(T0 / 1e9, UTC), **kw)


async def _event(log: MemoryLog, topic: str, key: str, payload: EventPayload, n: int) -> None:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{key}/{n}")
    env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                     occurred_at=datetime.fromtimestamp(T0 / 1e9, UTC),
                     correlation_id=event_id, causation_id=None)
    await log.producer(client_id="feed").send_many(topic, [OutRecord(key.encode(), encode(env))])


async def _commands(log: MemoryLog, payloads: list[CommandPayload]) -> None:
    records = [OutRecord(SYMBOL.encode(), encode(make_command(
        p, aggregate_id=SYMBOL, command_id=uuid.uuid5(uuid.NAMESPACE_URL, f"c/{i}/{p}"),
        issued_at=datetime.fromtimestamp(T0 / 1e9, UTC)))) for i, p in enumerate(payloads)]
    await log.producer(client_id="accounts").send_many("book.commands", records)


def _stream(n: int, seed: int = 7) -> list[CommandPayload]:
    """Orders of four accounts around 100 (ticks of 0.5), a quarter of them cancels."""
    rng = random.Random(seed)
    out: list[CommandPayload] = []
    placed: list[tuple[str, str]] = []
    for i in range(n):
        if placed and rng.random() < 0.25:
            order_id, owner = rng.choice(placed)
            out.append(CancelBookOrder(order_id=order_id, account_id=owner))
            continue
        owner = f"acct-{rng.randint(1, 4)}"
        side = rng.choice(["buy", "sell"])
        ticks = 200 + rng.randint(-4, 4) + (-1 if side == "buy" else 1)
        market = rng.random() < 0.1
        out.append(SubmitOrder(order_id=f"o{i}", account_id=owner, side=side,  # type: ignore[arg-type]
                               price=None if market else Decimal(ticks) / 2,
                               quantity=Decimal(rng.randint(1, 9)),
                               time_in_force=rng.choice(["gtc", "gtc", "gtc", "ioc", "fok"])))  # type: ignore[arg-type]
        placed.append((f"o{i}", owner))
    return out


def _pure(stream: list[CommandPayload]) -> tuple[Book, list[Result]]:
    """The pure book fed the same calls, converted at the edge as the engine does."""
    book, records = Book(), []
    for c in stream:
        if isinstance(c, SubmitOrder):
            records += book.place(c.order_id, c.account_id, c.side, int(c.quantity),
                                  None if c.price is None else int(c.price * 2), c.time_in_force)
        elif isinstance(c, CancelBookOrder):
            records += book.cancel(c.order_id)
    return book, records


def _logged(log: MemoryLog) -> list[tuple[str, dict[str, Any]]]:
    return [(env.type, env.payload) for env in
            (decode_event(r.value or b"") for r in log.records("book.events"))]


def _trades(log: MemoryLog) -> list[tuple[str, str, int, int]]:
    return [(p["maker_order_id"], p["taker_order_id"], p["price_ticks"], p["quantity_lots"])
            for t, p in _logged(log) if t == "book.trade"]


def _replayed(log: MemoryLog) -> BookState:
    state = AGGREGATE.initial(SYMBOL)
    for r in log.records("book.events"):
        env = decode_event(r.value or b"")
        AGGREGATE.evolve(state, REGISTRY.event_payload(env))
    return state


def _live(engine: BookEngine) -> BookState:
    state = engine.book(SYMBOL)
    assert state is not None and state.book is not None
    return state


async def _started(log: MemoryLog, **kw: Any) -> BookEngine:
    engine = _engine(log, **kw)
    await engine.start()
    return engine


async def test_orders_through_the_log_trade_as_the_pure_book_and_never_cross() -> None:
    log = _log()
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    stream = _stream(300)
    await _commands(log, stream)
    engine = await _started(log, max_batch=17)
    await engine.run(until_idle=True)
    book, records = _pure(stream)
    expected = [(r.maker_order_id, r.taker_order_id, r.price, r.qty)
                for r in records if isinstance(r, Fill)]
    assert expected and _trades(log) == expected
    live = _live(engine)
    assert live.book is not None and live.book.snapshot() == book.snapshot()
    bid, ask = live.book.best_bid(), live.book.best_ask()
    assert bid is None or ask is None or bid < ask
    # Folded event by event, as a reader of book.events would: never crossed after a call.
    folded = AGGREGATE.initial(SYMBOL)
    for r in log.records("book.events"):
        env = decode_event(r.value or b"")
        AGGREGATE.evolve(folded, REGISTRY.event_payload(env))
        if env.type in ("book.order-rested", "book.order-modified") and folded.book:
            b, a = folded.book.best_bid(), folded.book.best_ask()
            assert b is None or a is None or b < a, env
    trade = next(p for t, p in _logged(log) if t == "book.trade")
    assert Decimal(str(trade["price"])) == Decimal(trade["price_ticks"]) / 2
    assert log.open_transactions() == []
    await engine.stop()


async def test_an_order_off_the_grid_or_on_an_instrument_without_a_book_is_refused() -> None:
    log = _log()
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    await _commands(log, [
        SubmitOrder(order_id="a", account_id="acct-1", side="buy", price=Decimal("100.25"),
                    quantity=Decimal(1)),
        SubmitOrder(order_id="b", account_id="acct-1", side="buy", price=Decimal("100"),
                    quantity=Decimal(2)),
        CancelBookOrder(order_id="b", account_id="acct-2")])
    engine = await _started(log)
    await engine.run(until_idle=True)
    rejected = [p["reason"] for t, p in _logged(log) if t == "book.order-rejected"]
    assert rejected == ["off-grid", "not-owner"]
    assert _live(engine).book.order("b") is not None  # type: ignore[union-attr]
    await engine.stop()

    other = _log()  # the instrument executes against the market: no book
    await _event(other, "instrument.events", SYMBOL,
                 InstrumentRegistered(spec=SPEC.model_copy(update={"execution": "market"})), 1)
    await _commands(other, [SubmitOrder(order_id="a", account_id="acct-1", side="buy",
                                        price=Decimal(100), quantity=Decimal(1))])
    engine = await _started(other)
    await engine.run(until_idle=True)
    assert [(t, p["reason"]) for t, p in _logged(other)] == [
        ("book.order-rejected", "instrument-unknown")]
    await engine.stop()


async def test_a_restart_from_a_snapshot_and_the_tail_holds_the_fully_replayed_book() -> None:
    log = _log()
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    stream = _stream(400, seed=11)
    await _commands(log, stream[:300])
    first = await _started(log, snapshot_every=50, max_batch=40)
    await first.run(until_idle=True)
    await first.stop()
    assert log.records("book.snapshots")
    await _commands(log, stream[300:])
    heir = await _started(log, snapshot_every=10_000)
    events_before = len(log.records("book.events"))
    await heir.run(until_idle=True)
    tail = len(log.records("book.events")) - events_before
    assert tail > 0
    book, _ = _pure(stream)
    live = _live(heir)
    assert live.book is not None and live.book.snapshot() == book.snapshot()
    replayed = _replayed(log)
    assert replayed.book is not None and replayed.book.snapshot() == book.snapshot()
    # Loading starts at the newest snapshot and folds only the events after it.
    loaded = _engine(log)
    partition = next(p for p, s in heir.partitions.items() if SYMBOL in s.aggregates)
    snapshot = (await loaded.snapshots.load([partition]))[partition]
    assert snapshot is not None and snapshot.events_offset > events_before // 2
    await loaded.load_partitions([partition])
    restored = loaded.book(SYMBOL)
    assert restored is not None and restored.book is not None
    assert restored.book.snapshot() == book.snapshot()
    await heir.stop()


async def test_a_crash_mid_batch_loses_and_doubles_no_trade() -> None:
    log = _log()
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    stream = _stream(250, seed=5)
    await _commands(log, stream)
    doomed = await _started(log, max_batch=23, snapshot_every=30)
    await doomed.run(count=60)

    async def crash(offsets: Mapping[TopicPartition, int]) -> None:
        raise Crash

    doomed.flush = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await doomed.run(count=23)
    log.crash(doomed.runner.consumer, *doomed.runner.txn.values())  # type: ignore[arg-type]
    heir = await _started(log)
    await heir.run(until_idle=True)
    _, records = _pure(stream)
    expected = [(r.maker_order_id, r.taker_order_id, r.price, r.qty)
                for r in records if isinstance(r, Fill)]
    assert _trades(log) == expected  # read committed: the aborted batch's trades are gone
    ids = [decode_event(r.value or b"").event_id for r in log.records("book.events")]
    assert len(ids) == len(set(ids))
    assert log.open_transactions() == []
    await heir.stop()


async def _tick(log: MemoryLog, n: int, bid: float, ask: float, *, at: int) -> None:
    row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=bid, size=1.0, bid=bid, ask=ask)
    await _event(log, "market.ticks", SYMBOL,
                 MarketTicksPublished(instrument=SYMBOL, venue="internal", ticks=(row,)), n)


async def test_market_makers_quote_through_the_log_and_an_order_trades_against_them() -> None:
    log = _log()
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    maker = MakerConfig(maker="mm-1", spread_ticks=2, size_lots=10, levels=2)
    engine = await _started(log, makers=(maker,), quote_interval_ms=1_000)
    await engine.run(until_idle=True)
    await _tick(log, 1, 100.0, 100.5, at=T0)
    await _tick(log, 2, 100.0, 100.5, at=T0 + 100_000_000)  # within the interval: no quote
    await engine.run(until_idle=True)
    await engine.run(until_idle=True)  # the quote command comes back and is decided
    quotes = [decode_command(r.value or b"") for r in log.records("book.commands")]
    assert [q.type for q in quotes] == ["book.quote"]
    book = _live(engine).book
    assert book is not None
    assert book.best_bid() is not None and book.best_ask() is not None
    assert book.best_bid() < book.best_ask()  # type: ignore[operator]
    # A trader's market buy takes the maker's best ask.
    await _commands(log, [SubmitOrder(order_id="t1", account_id="acct-1", side="buy",
                                      quantity=Decimal(3))])
    best_ask = book.best_ask()
    await engine.run(until_idle=True)
    trades = [p for t, p in _logged(log) if t == "book.trade"]
    assert [(p["maker_account_id"], p["taker_account_id"], p["price_ticks"])
            for p in trades] == [("mm-1", "acct-1", best_ask)]
    # A later tick re-quotes: the last quote is cancelled, the new one rests.
    await _tick(log, 3, 101.0, 101.5, at=T0 + 2_000_000_000)
    await engine.run(until_idle=True)
    await engine.run(until_idle=True)
    assert book.best_bid() is not None and book.best_bid() >= 201  # type: ignore[operator]
    maker_state = _live(engine).makers["mm-1"]
    assert maker_state[0] == 8 and len(maker_state[1]) == 4
    # Replaying the log rebuilds the maker too: the same next quote.
    replayed = _replayed(log)
    assert replayed.makers == _live(engine).makers
    assert replayed.book is not None and replayed.book.snapshot() == book.snapshot()
    await engine.stop()


async def test_a_book_snapshot_in_items_restores_the_same_book() -> None:
    from core.domain.book_market import restore_items, snapshot_items
    state = BookState(SYMBOL, Book(), Decimal("0.5"), Decimal(1), {"mm-1": (4, ("mm-1:3",))})
    assert state.book is not None
    for i in range(5_000):
        state.book.apply(Place(f"o{i}", f"a{i % 3}", "buy" if i % 2 else "sell", 1 + i % 4,
                               100 - i % 7 if i % 2 else 101 + i % 5))
    items = list(snapshot_items(SYMBOL, 42, state, AGGREGATE))
    assert len(items) > 3
    (version, back), = restore_items(items, AGGREGATE).values()
    assert version == 42 and back.makers == state.makers
    assert back.book is not None and back.book.snapshot() == state.book.snapshot()


# -- accounts trading on a book instrument, both engines on one log ----------------------------

ASSESSMENT = uuid.UUID("00000000-0000-4000-8000-00000000b00c")


async def _account_command(log: MemoryLog, account: str, payload: CommandPayload,
                           n: int) -> None:
    env = make_command(payload, aggregate_id=account,
                       command_id=uuid.uuid5(uuid.NAMESPACE_URL, f"acct/{n}"),
                       issued_at=datetime.fromtimestamp(T0 / 1e9, UTC))
    await log.producer(client_id="api").send_many(
        "account.commands", [OutRecord(account.encode(), encode(env))])


def _account_events(log: MemoryLog) -> list[tuple[str, dict[str, Any]]]:
    return [(env.type, env.payload) for env in
            (decode_event(r.value or b"") for r in log.records("account.events"))]


async def test_an_account_order_on_a_book_instrument_fills_against_a_market_maker_once(
) -> None:
    from core.domain import trading
    from core.processors.account_engine import AccountEngine
    from schemas.account import OpenAccount, account_id_for
    from schemas.trading import CancelOrder, PlaceOrder, order_id_for

    log = _log()
    account = account_id_for(str(ASSESSMENT))
    clock = [T0 + 1_000_000]
    await _event(log, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), 1)
    accounts = AccountEngine(Settings(env="test"), REGISTRY, log=log,
                             clock=lambda: datetime.fromtimestamp(clock[0] / 1e9, UTC))
    books = await _started(log, makers=(MakerConfig(maker="mm-1", spread_ticks=2,
                                                    size_lots=10, levels=2),))
    await accounts.start()

    async def settle() -> None:
        for _ in range(4):
            await accounts.run(until_idle=True)
            await books.run(until_idle=True)

    await settle()
    await _account_command(log, account, OpenAccount(
        assessment_id=ASSESSMENT, user_id=uuid.uuid4(), starting_balance=Decimal(10_000),
        currency="USD"), 1)
    await _tick(log, 1, 100.0, 100.5, at=T0)
    await settle()
    book = _live(books).book
    assert book is not None and book.best_ask() == 201  # the maker's ask: 100.5
    place = PlaceOrder(client_order_id="buy-1", instrument=SYMBOL, side="buy", type="market",
                       quantity=Decimal(3))
    rest = PlaceOrder(client_order_id="bid-1", instrument=SYMBOL, side="buy", type="limit",
                      quantity=Decimal(2), limit_price=Decimal("95"))
    await _account_command(log, account, place, 2)
    await _account_command(log, account, rest, 3)
    await settle()
    events = _account_events(log)
    fills = [p for t, p in events if t == "trading.order-filled"]
    assert [(p["liquidity"], Decimal(str(p["price"])), Decimal(str(p["quantity"])))
            for p in fills] == [("taker", Decimal("100.5"), Decimal(3))]
    assert fills[0]["order_id"] == str(order_id_for(account, "buy-1"))
    assert [p["taker_account_id"] for t, p in _logged(log) if t == "book.trade"] == [account]
    # The resting bid is in the book under the account's order id; a cancel goes through it.
    resting = order_id_for(account, "bid-1")
    assert book.order(str(resting)) is not None
    await _account_command(log, account, CancelOrder(order_id=resting), 4)
    await settle()
    types = [t for t, _ in _account_events(log)]
    assert "trading.order-cancel-requested" in types
    cancelled = [p for t, p in _account_events(log) if t == "trading.order-cancelled"]
    assert [(p["order_id"], p["reason"]) for p in cancelled] == [(str(resting), "requested")]
    assert book.order(str(resting)) is None
    # Nothing booked twice: an heir of both engines, after a crash, adds nothing.
    log.crash(*[c for c in (accounts.runner.consumer, books.runner.consumer) if c])  # type: ignore[misc]
    heirs = (AccountEngine(Settings(env="test"), REGISTRY, log=log,
                           clock=lambda: datetime.fromtimestamp(clock[0] / 1e9, UTC)),
             _engine(log))
    before = len(log.records("account.events"))
    for heir in heirs:
        await heir.start()
    for _ in range(2):
        for heir in heirs:
            await heir.run(until_idle=True)
    assert len(log.records("account.events")) == before
    state = trading.initial(account)
    for t_env in (decode_event(r.value or b"") for r in log.records("account.events")):
        trading.evolve(state, REGISTRY.event_payload(t_env))
    assert state.positions[SYMBOL].quantity == Decimal(3)
    assert not state.orders
    for heir in heirs:
        await heir.stop()
    await accounts.stop()
    await books.stop()
