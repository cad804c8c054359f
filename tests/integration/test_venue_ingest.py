"""A venue feed into Kafka for real: replayed Binance frames become tick batches on
`market.ticks`; refused frames land on `market.raw.dlq` with their raw bytes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kernel.dlq import read_dead_letters
from kernel.settings import Settings
from market_data.adapters.venues.backoff import Backoff
from market_data.adapters.venues.client import ClientConfig
from market_data.domain.venues.binance import BinanceFeed
from market_data.domain.venues.common import TimeGuard
from market_data.services.venues import VenueIngestService
from tests.data.venues.make_tapes import NOW_NS
from tests.integration.helpers import read_topic, wait_until
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
