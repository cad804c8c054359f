"""Time travel on the in-memory log: the account engine trades two accounts of one partition,
the history projection's fold snapshots them, and an account rebuilt at an instant from its
snapshot and the log's tail equals the live state recorded at that instant, and the full fold.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
import pytest_asyncio

from core.adapters.account_history_projection import Current, Snapshot, fold_history
from core.adapters.account_log import AccountLogReader, TailTooLong
from core.domain import trading
from core.domain.trading.history import Rewind, Rewound, snapshot_due
from core.entrypoints.http.time_travel import parse_instant
from core.handlers.time_travel import tail_ranges
from core.processors.account_engine import AccountEngine
from core.views.account_history import AccountAsOf, HistoryPoint, account_as_of
from kernel.http import Problem
from kernel.log import LogConsumer, OutRecord, partition_for
from kernel.memlog import MemoryLog
from kernel.projection import Applied
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import AccountOpened, OpenAccount, account_id_for
from schemas.codec import decode_event, encode
from schemas.envelope import CommandPayload, EventEnvelope, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE
from schemas.trading import AccountBalanceChanged, PlaceOrder

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_796_000_000_000_000_000
SECOND = 1_000_000_000
REGISTRY = default_registry()
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                     quote_currency="USD")
EVENTS_PARTITIONS = next(s.partitions for s in CATALOGUE if s.name == "account.events")


def _same_partition_accounts() -> tuple[dict[str, uuid.UUID], int]:
    """Two accounts (with their assessments) whose events land on one partition, so their
    records interleave."""
    seen: dict[int, tuple[str, uuid.UUID]] = {}
    for n in range(1000):
        assessment = uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")
        account = account_id_for(str(assessment))
        p = partition_for(account.encode(), EVENTS_PARTITIONS)
        if p in seen:
            return dict([seen[p], (account, assessment)]), p
        seen[p] = account, assessment
    raise AssertionError("no two accounts share a partition")


ASSESSMENTS, PARTITION = _same_partition_accounts()
A, B = ASSESSMENTS


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


async def _event(log: MemoryLog, topic: str, key: str, payload: EventPayload, n: int) -> None:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{key}/{n}")
    env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                     occurred_at=_at(T0), correlation_id=event_id, causation_id=None)
    await log.producer(client_id="feed").send_many(topic, [OutRecord(key.encode(), encode(env))])


async def _tick(log: MemoryLog, n: int, bid: str, ask: str, *, at: int) -> None:
    row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(bid), size=5.0,
                  bid=float(bid), ask=float(ask))
    await _event(log, "market.ticks", "BTC-USD",
                 MarketTicksPublished(instrument="BTC-USD", venue="simulator", ticks=(row,)), n)


async def _command(log: MemoryLog, account: str, payload: CommandPayload) -> None:
    env = make_command(payload, aggregate_id=account, command_id=uuid.uuid4(), issued_at=_at(T0))
    await log.producer(client_id="api").send_many(
        "account.commands", [OutRecord(account.encode(), encode(env))])


def _place(client: str, side: str, kind: str, qty: str, limit: str | None = None
           ) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument="BTC-USD", side=side,  # type: ignore[arg-type]
                      type=kind, quantity=Decimal(qty),  # type: ignore[arg-type]
                      limit_price=None if limit is None else Decimal(limit))


def _view(state: trading.TradingAccount, version: int) -> dict[str, object]:
    """What a time travel answers, without the instant asked and the time of the last event."""
    return account_as_of(trading.clone(state), version=version, last_event_at=None,
                         as_of=_at(T0)).model_dump(exclude={"as_of", "last_event_at"})


class Traded:
    """The log after a session of trading, with the live states recorded along the way."""

    def __init__(self) -> None:
        self.log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
        self.live: list[tuple[datetime, str, dict[str, object]]] = []

    def applied(self) -> list[Applied]:
        out = []
        for r in self.log.records("account.events", PARTITION):
            env = decode_event(r.value or b"")
            out.append(Applied(env, REGISTRY.event_payload(env), r.partition, r.offset))
        return out


async def _trade() -> Traded:
    """Two accounts trade on one partition; ticks carry venue times a little older than the
    commands decided before them, so event times are not monotonic on the log."""
    traded = Traded()
    log = traded.log
    clock = [T0]
    await _event(log, "instrument.events", "BTC-USD", InstrumentRegistered(spec=BTC), 1)
    engine = AccountEngine(Settings(env="test"), REGISTRY, log=log,
                           clock=lambda: _at(clock[0]), mark_interval_ms=1_000)
    await engine.start()
    for account in (A, B):
        await _command(log, account, OpenAccount(
            assessment_id=ASSESSMENTS[account], user_id=uuid.uuid4(),
            starting_balance=Decimal(10_000), currency="USD"))
    await _tick(log, 1, "100.00", "100.02", at=T0)
    await engine.run(until_idle=True)
    price = Decimal("100.00")
    for step in range(1, 16):
        clock[0] = T0 + step * SECOND
        account = A if step % 2 else B
        if step % 3 == 0:
            await _command(log, account, _place(f"l{step}", "buy", "limit", "1",
                                                str(price - Decimal("0.50"))))
        else:
            await _command(log, account, _place(f"m{step}", "buy" if step % 4 else "sell",
                                                "market", "0.5"))
        await engine.run(until_idle=True)
        # A tick 300 ms older than that decision, arriving after it.
        price += Decimal("-0.70") if step % 3 == 0 else Decimal("0.30")
        await _tick(log, step + 1, str(price), str(price + Decimal("0.02")),
                    at=clock[0] - 300_000_000)
        await engine.run(until_idle=True)
        instant = _at(clock[0])  # every event so far is at or before it; every later one after
        for acc in (A, B):
            versioned = next(p.aggregates[acc] for p in engine.partitions.values()
                             if acc in p.aggregates)
            traded.live.append((instant, acc, _view(versioned.value, versioned.version)))
    await engine.stop()
    return traded


def _full_fold(events: list[Applied], account: str, as_of: datetime) -> Rewound:
    rewind = Rewind(Rewound.start(account), as_of)
    for a in events:
        if a.envelope.aggregate_id == account and not rewind.feed(a.envelope, a.payload):
            break
    return rewind.now


def _point(account: str, as_of: datetime, current: dict[str, Current | None],
           snapshots: list[Snapshot], projection_offset: int) -> HistoryPoint | None:
    """What `core.views.account_history.history_point` selects, from the fold in memory."""
    row = current.get(account)
    if row is None:
        return None
    own = sorted((s for s in snapshots if s.account_id == account), key=lambda s: s.version)
    best = [s for s in own if s.at <= as_of]
    snap = best[-1] if best else None
    after = [s for s in own if snap is not None and s.version > snap.version]
    return HistoryPoint(
        partition=row.partition, version=row.version, events_offset=row.events_offset,
        at=row.at, snapshot_version=None if snap is None else snap.version,
        snapshot_offset=None if snap is None else snap.events_offset,
        snapshot_at=None if snap is None else snap.at,
        snapshot=None if snap is None else trading.load(orjson.loads(snap.state)),
        next_prev_offset=after[0].prev_offset if after else None,
        projection_offset=projection_offset)


async def _travel(reader: AccountLogReader, point: HistoryPoint | None, account: str,
                  as_of: datetime) -> tuple[AccountAsOf | None, int]:
    if point is None or point.snapshot is None:
        return None, 0
    assert point.snapshot_version is not None
    rewind = Rewind(Rewound(point.snapshot, point.snapshot_version, point.snapshot_at), as_of)
    read = await reader.fold(rewind, account_id=account, partition=point.partition,
                             ranges=tail_ranges(point, as_of))
    now = rewind.now
    if now.state.status == "none":
        return None, read
    return account_as_of(now.state, version=now.version, last_event_at=now.at,
                         as_of=as_of), read


def _readers(log: MemoryLog) -> Callable[[str], LogConsumer]:
    return lambda client_id: log.consumer(client_id=client_id)


def _instants(events: list[Applied]) -> list[datetime]:
    """Every event time, a moment before and after each, and before and after them all."""
    times = sorted({a.envelope.occurred_at for a in events})
    tiny = timedelta(microseconds=1)
    return ([times[0] - timedelta(days=1)] + [t + d for t in times for d in (-tiny, 0 * tiny,
                                                                            tiny)]
            + [times[-1] + timedelta(days=365)])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traded() -> Traded:
    return await _trade()


async def test_the_account_at_an_instant_equals_the_live_state_recorded_then(
        traded: Traded) -> None:
    events = traded.applied()
    current: dict[str, Current | None] = {}
    _, snapshots = fold_history(current, events, every_events=3, every_records=7)
    end = events[-1].offset + 1
    reader = AccountLogReader(_readers(traded.log), topic="account.events", registry=REGISTRY)
    assert len(traded.live) == 30
    for instant, account, live in traded.live:
        got, _ = await _travel(reader, _point(account, instant, current, snapshots, end),
                               account, instant)
        assert got is not None
        assert got.model_dump(exclude={"as_of", "last_event_at"}) == live
    await reader.stop()


async def test_snapshot_and_tail_equal_the_full_fold_at_every_instant_also_while_behind(
        traded: Traded) -> None:
    """Before, at and after every event time, with the projection caught up and with it
    having read only part of the partition (the rest is read from the log)."""
    events = traded.applied()
    reader = AccountLogReader(_readers(traded.log), topic="account.events", registry=REGISTRY)
    kinds = {type(a.payload) for a in events}
    assert AccountBalanceChanged in kinds and AccountOpened in kinds
    for seen in (len(events), len(events) * 2 // 3, 3):
        current: dict[str, Current | None] = {}
        _, snapshots = fold_history(current, events[:seen], every_events=3, every_records=7)
        projection_offset = events[seen - 1].offset + 1
        for as_of in _instants(events):
            for account in (A, B):
                expected = _full_fold(events, account, as_of)
                point = _point(account, as_of, current, snapshots, projection_offset)
                got, _ = await _travel(reader, point, account, as_of)
                if expected.state.status == "none":
                    assert got is None, (as_of, account)
                    continue
                assert got is not None, (as_of, account)
                assert got.model_dump(exclude={"as_of"}) == account_as_of(
                    expected.state, version=expected.version, last_event_at=expected.at,
                    as_of=as_of).model_dump(exclude={"as_of"}), (seen, as_of, account)
    await reader.stop()


async def test_the_tail_read_stays_within_the_snapshot_spacing(traded: Traded) -> None:
    events = traded.applied()
    current: dict[str, Current | None] = {}
    every_records = 7
    _, snapshots = fold_history(current, events, every_events=1000,
                                every_records=every_records)
    end = events[-1].offset + 1
    reader = AccountLogReader(_readers(traded.log), topic="account.events", registry=REGISTRY)
    for as_of in _instants(events):
        for account in (A, B):
            point = _point(account, as_of, current, snapshots, end)
            if point is None or point.snapshot_offset is None:
                continue
            _, read = await _travel(reader, point, account, as_of)
            assert read < every_records
    await reader.stop()


async def test_a_tail_longer_than_the_cap_is_refused_not_read(traded: Traded) -> None:
    events = traded.applied()
    current: dict[str, Current | None] = {}
    _, snapshots = fold_history(current, events[:1], every_events=3, every_records=7)
    point = _point(A if events[0].envelope.aggregate_id == A else B, _at(T0 + 3600 * SECOND),
                   current, snapshots, events[0].offset + 1)
    assert point is not None
    reader = AccountLogReader(_readers(traded.log), topic="account.events", registry=REGISTRY,
                              max_records=5)
    rewind = Rewind(Rewound(point.snapshot or trading.initial(""), 1, point.snapshot_at),
                    _at(T0 + 3600 * SECOND))
    with pytest.raises(TailTooLong):
        await reader.fold(rewind, account_id=events[0].envelope.aggregate_id,
                          partition=PARTITION, ranges=tail_ranges(point, _at(T0 + 3600 * SECOND)))
    await reader.stop()


def _env(seq: int, at_s: int) -> EventEnvelope:
    return make_event(AccountBalanceChanged(delta=Decimal(0), balance=Decimal(seq),
                                            realized=Decimal(0), commission=Decimal(0),
                                            cause="fill", reference=uuid.uuid4()),
                      aggregate_id=A, sequence=seq, event_id=uuid.uuid4(),
                      occurred_at=_at(T0 + at_s * SECOND), correlation_id=uuid.uuid4(),
                      causation_id=None)


async def test_rewind_folds_events_at_the_instant_and_stops_at_the_first_after_it() -> None:
    envs = [_env(1, 1), _env(2, 2), _env(3, 4), _env(4, 3), _env(5, 5)]
    rewind = Rewind(Rewound.start(A), _at(T0 + 2 * SECOND))
    fed = [rewind.feed(e, REGISTRY.event_payload(e)) for e in envs]
    assert fed == [True, True, False, False, False]
    assert rewind.now.version == 2 and rewind.now.state.balance == Decimal(2)
    # An older time after a newer one is not folded once the newer one was past the instant:
    # the answer is always a state the account was really in.
    rewind = Rewind(Rewound.start(A), _at(T0 + 3 * SECOND))
    for e in envs:
        rewind.feed(e, REGISTRY.event_payload(e))
    assert rewind.now.version == 2 and rewind.now.at == _at(T0 + 2 * SECOND)


async def test_a_snapshot_is_due_first_then_every_n_events_or_m_records() -> None:
    due = {"every_events": 3, "every_records": 10}
    assert snapshot_due(version=1, snapshot_version=0, records_since=1, **due)
    assert not snapshot_due(version=3, snapshot_version=1, records_since=9, **due)
    assert snapshot_due(version=4, snapshot_version=1, records_since=2, **due)
    assert snapshot_due(version=2, snapshot_version=1, records_since=10, **due)


@pytest.mark.parametrize("text", ["2026-01-02T09:30:00Z", "2026-01-02t15:00:00.123456789+05:30",
                                  "2026-01-02 00:30:00-09:00"])
async def test_as_of_is_an_rfc3339_instant_read_in_utc(text: str) -> None:
    got = parse_instant(text)
    assert got.utcoffset() == timedelta(0)
    assert got.replace(microsecond=0) == datetime(2026, 1, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-01-02T09:30:00", "1700000000",
                                  "2026-02-30T00:00:00Z", "2026-01-02T24:00:00Z",
                                  "0001-01-01T00:00:00+01:00", "2026-01-02T09:30:00Z "])
async def test_an_as_of_that_is_not_an_instant_is_422(text: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_instant(text)
    assert (caught.value.status, caught.value.slug) == (422, "invalid-as-of")
