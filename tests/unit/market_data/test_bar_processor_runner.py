"""The bar processor as a StreamRunner stage (external offsets) on the in-memory log and an
in-memory state store: a crash mid-stream closes the same bars as a clean run, and an
unreadable record is dead-lettered with its origin while the partition goes on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.runner import StreamRunner
from market_data.services.bars import BarStage
from schemas.codec import encode
from schemas.envelope import make_event
from schemas.market import MarketTicksPublished, TickRow

pytestmark = pytest.mark.asyncio(loop_scope="session")

TICKS, BARS, DLQ = "market.ticks", "market.bars", "market.ticks.dlq"
MINUTE = 60 * 1_000_000_000
T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


class Crash(Exception):
    pass


class _Store:
    def __init__(self) -> None:
        self.saved: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self.saves = 0
        self.crash_after: int | None = None

    async def load(self, topic: str) -> dict[int, tuple[int, int, dict[str, Any]]]:
        # Through JSON, as PostgreSQL's jsonb would give it back.
        return {p: (o, w, orjson.loads(orjson.dumps(st))) for p, (o, w, st) in self.saved.items()}

    async def save(self, topic: str, rows: Sequence[tuple[int, int, int, dict[str, Any]]]
                   ) -> None:
        if self.crash_after is not None and self.saves >= self.crash_after:
            raise Crash
        for p, o, w, st in rows:
            self.saved[p] = (o, w, orjson.loads(orjson.dumps(st)))
        self.saves += 1


def _batch(instrument: str, n: int, i: int) -> bytes:
    at = T0 + i * 7_000_000_000  # a batch every 7 s: a 1m bar closes every ~9 batches
    rows = tuple(TickRow(venue_ts_ns=at + k * 1_000_000, received_ts_ns=at + k * 1_000_000,
                         price=100.0 + ((i * 3 + k) % 17), size=1.0) for k in range(n))
    payload = MarketTicksPublished(instrument=instrument, venue="sim", ticks=rows)
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{instrument}/{i}")
    return encode(make_event(payload, aggregate_id=instrument, sequence=i + 1,
                             occurred_at=datetime.fromtimestamp(at / 1e9, UTC),
                             correlation_id=event_id, causation_id=None, event_id=event_id))


async def _feed(log: MemoryLog, *, poison_at: int | None = None) -> None:
    records = []
    for i in range(60):
        for p, instrument in enumerate(("BTC-USD", "ETH-USD")):
            value = b"garbage" if i == poison_at and p == 0 else _batch(instrument, 5, i)
            records.append(OutRecord(instrument.encode(), value, partition=p))
    await log.producer(client_id="feed").send_many(TICKS, records)


def _log() -> MemoryLog:
    return MemoryLog({TICKS: 2, BARS: 2, DLQ: 1})


async def _runner(log: MemoryLog, store: _Store, levels: dict[str, Any], *,
                  max_batch: int = 500) -> StreamRunner:
    async def put_levels(views: dict[str, dict[str, Any]]) -> None:
        levels.update(views)

    stage = BarStage(store, put_levels, topic=TICKS, bars_topic=BARS)
    r = StreamRunner(log, stage, name="market-bars", group_id="market-bars", topics=[TICKS],
                     mode="external", dead_letter_topic=lambda t: t + ".dlq",
                     max_batch=max_batch, assign_all=True)
    await r.start()
    return r


def _bars(log: MemoryLog) -> list[bytes | None]:
    return [r.value for r in log.records(BARS)]


async def test_a_crash_mid_stream_closes_the_same_bars_as_a_clean_run() -> None:
    clean_log, clean_levels = _log(), {}  # type: ignore[var-annotated]
    await _feed(clean_log)
    clean = await _runner(clean_log, _Store(), clean_levels)
    await clean.run(until_idle=True)
    await clean.stop()
    expected = _bars(clean_log)
    assert len(expected) > 10

    log, store, levels = _log(), _Store(), {}  # type: ignore[var-annotated]
    await _feed(log)
    doomed = await _runner(log, store, levels, max_batch=11)
    store.crash_after = 4
    with pytest.raises(Crash):
        await doomed.run(until_idle=True)
    log.crash(doomed.consumer)  # type: ignore[arg-type]
    store.crash_after = None
    heir = await _runner(log, store, levels, max_batch=11)
    await heir.run(until_idle=True)
    await heir.stop()
    # Bars after the last save are closed again, with the same event ids (the bars
    # projection upserts them); as a set, and per partition in order, they are the clean run's.
    got = _bars(log)
    assert set(got) == set(expected)
    for p in range(2):
        deduped = list(dict.fromkeys(r.value for r in log.records(BARS, p)))
        assert deduped == [r.value for r in clean_log.records(BARS, p)]
    assert levels == clean_levels
    assert {p: o for p, (o, _, _) in store.saved.items()} == {0: 60, 1: 60}


async def test_an_unreadable_record_is_dead_lettered_with_its_origin_and_bars_go_on() -> None:
    log, store, levels = _log(), _Store(), {}  # type: ignore[var-annotated]
    await _feed(log, poison_at=5)
    r = await _runner(log, store, levels)
    await r.run(until_idle=True)
    [letter] = log.records(DLQ)
    headers = dict(letter.headers)
    assert letter.value == b"garbage"
    assert (headers["x-origin-topic"], headers["x-origin-partition"],
            headers["x-origin-offset"]) == (b"market.ticks", b"0", b"5")
    assert headers["x-consumer"] == b"market-bars"
    assert log.records(BARS, 0) and log.records(BARS, 1)  # both partitions went on
    assert store.saved[0][0] == 60
    assert set(levels) == {"BTC-USD", "ETH-USD"}
    await r.stop()
