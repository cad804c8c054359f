"""A venue feed into Kafka for real: replayed Binance frames become tick batches on
`market.ticks`; refused frames land on `market.raw.dlq` with their raw bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime

import pytest

from kernel.dlq import read_dead_letters
from kernel.settings import Settings
from market_data.adapters.venues.backoff import Backoff
from market_data.adapters.venues.client import ClientConfig
from market_data.domain.venues.binance import BinanceFeed
from market_data.domain.venues.common import TimeGuard
from market_data.domain.venues.polymarket import PolymarketFeed
from market_data.services.venues import VenueIngestService
from schemas.codec import decode_command
from schemas.envelope import make_command
from schemas.instrument import RegisterInstrument
from tests.data.venues.make_tapes import NOW_NS, PM_NO, PM_YES
from tests.integration.helpers import command_record, produce, read_topic, spec, wait_until
from tests.integration.test_venue_clients import BINANCE_TAPE
from tests.support.replay_server import Faults, ReplayServer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

GARBAGE = [b"\x00\x01 not json", b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"']


async def test_replayed_binance_frames_reach_market_ticks_and_garbage_the_raw_dlq(
    settings: Settings,
) -> None:
    feed = BinanceFeed({"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD"},
                       streams=("trade", "aggTrade", "bookTicker", "kline_1m"),
                       guard=TimeGuard(max_age_ns=10**18, max_ahead_ns=10**18))
    expected = set()
    for line in BINANCE_TAPE:
        result = feed.parse(line, NOW_NS)
        assert isinstance(result, list)
        expected |= {t.trade_id for t in result if t.trade_id}
    async with ReplayServer([BINANCE_TAPE], faults=Faults(
            inject={5: list(GARBAGE)})) as server:
        service = VenueIngestService(settings, feed, ClientConfig(
            url=server.url, backoff=Backoff(base=0.02, cap=0.1), stale_after_s=2.0,
            max_connection_age_s=None, close_timeout_s=0.5))
        await service.start()
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            async def all_trades() -> bool:
                ids = {row["trade_id"] for env in await read_topic(settings, "market.ticks")
                       for row in env.payload["ticks"] if row.get("trade_id")}
                return ids == expected

            await wait_until(all_trades, timeout=30, what="every trade of the tape on Kafka")
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await task
            await service.stop()
    letters = await read_dead_letters(settings, "market.raw.dlq")
    assert [d.reason for d in letters] == ["malformed-json", "malformed-json"]
    assert letters[0].value == GARBAGE[0]
    rows = [row for env in await read_topic(settings, "market.ticks")
            for row in env.payload["ticks"] if row.get("trade_id")]
    assert len(rows) == len(expected)  # each trade once, the tape's resends dropped


async def test_a_polymarket_resolution_resolves_the_instrument_once(
    settings: Settings, spawn: type,
) -> None:
    """Market data's resolution reaches core's instrument decider: one `instrument.resolved`
    with the venue as its source, though the venue sent it twice."""
    symbols = {PM_YES: "PM-FEDCUT-JAN26-YES", PM_NO: "PM-FEDCUT-JAN26-NO"}
    for symbol in symbols.values():
        register = make_command(RegisterInstrument(spec=spec(
            symbol, asset_class="prediction", venue="polymarket", lot_size="1")),
            aggregate_id=symbol, command_id=uuid.uuid4(), issued_at=datetime.now(UTC))
        await produce(settings, "instrument.commands", [command_record(register)])
    spawn("decider", "instrument").start()
    frame = json.dumps({"event_type": "market_resolved", "id": "1", "market": "0xabc",
                        "assets_ids": [PM_YES, PM_NO], "winning_asset_id": PM_NO,
                        "winning_outcome": "No", "timestamp": "1767225600000"})
    async with ReplayServer([[frame, frame]], interval_s=0.02) as server:
        service = VenueIngestService(settings, PolymarketFeed(symbols), ClientConfig(
            url=server.url, backoff=Backoff(base=0.02, cap=0.1), stale_after_s=2.0,
            max_connection_age_s=None, close_timeout_s=0.5))
        await service.start()
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            async def resolved() -> bool:
                events = await read_topic(settings, "instrument.events")
                return sum(e.type == "instrument.resolved" for e in events) >= 2

            await wait_until(resolved, timeout=60, what="both instruments resolved")
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await task
            await service.stop()
    commands = [decode_command(m.value)
                for m in await read_topic(settings, "instrument.commands", raw=True)]
    resolves = [c for c in commands if c.type == "instrument.resolve"]
    assert len(resolves) >= 4  # each frame (and each replay after a reconnect), two assets
    assert len({c.command_id for c in resolves}) == 2  # one command per instrument
    await asyncio.sleep(1)  # the duplicates decided too
    events = [e for e in await read_topic(settings, "instrument.events")
              if e.type == "instrument.resolved"]
    assert {(e.aggregate_id, e.payload["outcome"], e.payload["source"]) for e in events} == {
        ("PM-FEDCUT-JAN26-YES", 0, "polymarket"), ("PM-FEDCUT-JAN26-NO", 1, "polymarket")}
    assert len(events) == 2
    assert events[0].payload["resolved_at"].startswith("2026-01-01T00:00:00")
