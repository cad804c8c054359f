"""Venue clients against a real WebSocket server on loopback, replaying recorded tapes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from market_data.adapters.venues.backoff import Backoff
from market_data.adapters.venues.client import ClientConfig, VenueClient
from market_data.domain.ticks import Tick
from market_data.domain.venues.binance import BinanceFeed
from market_data.domain.venues.common import Resolution
from market_data.domain.venues.dedupe import Deduper
from market_data.domain.venues.feed import VenueFeed
from market_data.domain.venues.kalshi import KalshiFeed
from market_data.domain.venues.polymarket import PolymarketFeed
from tests.data.venues.make_tapes import KALSHI_TICKER, NOW_NS, PM_NO, PM_YES
from tests.support.replay_server import Faults, ReplayServer, read_tape

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

TAPES = Path(__file__).parents[1] / "data" / "venues"
BINANCE_TAPE = read_tape(TAPES / "binance_combined.jsonl")
KALSHI_TAPE = read_tape(TAPES / "kalshi_orderbook.jsonl")
KALSHI_GAP_TAPE = read_tape(TAPES / "kalshi_orderbook_gap.jsonl")
POLYMARKET_TAPE = read_tape(TAPES / "polymarket_market.jsonl")
DELTA_SEQ_20 = next(i for i, line in enumerate(KALSHI_TAPE)
                    if '"orderbook_delta"' in line and '"seq":20,' in line)


def binance_feed() -> BinanceFeed:
    return BinanceFeed({"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD"},
                       streams=("trade", "aggTrade", "bookTicker", "kline_1m"))


def kalshi_feed() -> KalshiFeed:
    return KalshiFeed({KALSHI_TICKER: "PM-KXFED-JAN26-H0"})


def expected_trade_ids(feed: VenueFeed, tape: list[str]) -> set[str]:
    ids: set[str] = set()
    for line in tape:
        result = feed.parse(line, NOW_NS)
        assert isinstance(result, list)
        ids.update(tick.trade_id for tick in result if tick.trade_id)
    return ids


def config(url: str, **overrides: object) -> ClientConfig:
    settings: dict[str, object] = {
        "url": url, "backoff": Backoff(base=0.02, cap=0.1), "stable_after_s": 30.0,
        "stale_after_s": 2.0, "ping_interval_s": 0.5, "ping_timeout_s": 2.0,
        "heartbeat_interval_s": 0.1, "max_connection_age_s": None, "close_timeout_s": 0.5,
    }
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.dead: list[tuple[bytes, str]] = []

    async def on_ticks(self, ticks: list[Tick]) -> None:
        self.ticks.extend(ticks)

    def on_dead_letter(self, raw: bytes, reason: str) -> None:
        self.dead.append((raw, reason))

    def trade_ids(self) -> list[str]:
        return [tick.trade_id for tick in self.ticks if tick.trade_id]


def client(feed: VenueFeed, sink: Sink, cfg: ClientConfig, **kwargs: object) -> VenueClient:
    return VenueClient(feed, config=cfg, on_ticks=sink.on_ticks,
                       on_dead_letter=sink.on_dead_letter, clock_ns=lambda: NOW_NS,
                       **kwargs)  # type: ignore[arg-type]


async def run_until(venue: VenueClient, done: Callable[[], bool], timeout: float = 5.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(venue.run(stop))
    try:
        async with asyncio.timeout(timeout):
            # The condition spans the sink, the client and the server: polling is simplest.
            while not done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        async with asyncio.timeout(3.0):
            await task


async def test_binance_client_resumes_after_a_drop_and_delivers_every_trade_once() -> None:
    expected = expected_trade_ids(binance_feed(), BINANCE_TAPE)
    sink = Sink()
    async with ReplayServer([BINANCE_TAPE], faults=Faults(drop_after=40, overlap=15)) as server:
        venue = client(binance_feed(), sink, config(server.url))
        await run_until(venue, lambda: set(sink.trade_ids()) == expected)
    assert sorted(sink.trade_ids()) == sorted(expected)  # each exactly once
    assert server.connections == 2 and len(server.subscribes) == 2
    assert venue.stats.disconnects == ["ConnectionClosedError"]
    assert venue.stats.duplicates >= 3  # the tape's own resends, plus the overlap


async def test_backoff_delays_grow_and_are_jittered() -> None:
    with socket.socket() as probe:  # a port that refuses connections
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}/stream"
    draws = iter([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.1, 0.9])
    slept: list[float] = []
    stop = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        if len(slept) == 8:
            stop.set()

    venue = client(binance_feed(), Sink(), config(url, backoff=Backoff(base=0.1, cap=1.0)),
                   rng=lambda: next(draws), sleep=fake_sleep)
    async with asyncio.timeout(5.0):
        await venue.run(stop)
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 0.5, 0.1, 0.9])
    assert venue.stats.connects == 0 and len(venue.stats.disconnects) == 8


async def test_backoff_resets_after_a_stable_connection() -> None:
    sink = Sink()
    faults = Faults(drop_after=5, fault_connections=3)
    async with ReplayServer([BINANCE_TAPE], faults=faults) as server:
        venue = client(binance_feed(), sink, config(server.url, stable_after_s=0.0),
                       rng=lambda: 1.0)
        await run_until(venue, lambda: server.connections >= 4)
    assert venue.stats.delays[:3] == pytest.approx([0.02, 0.02, 0.02])


async def test_staleness_watchdog_reconnects_after_a_stall() -> None:
    expected = expected_trade_ids(binance_feed(), BINANCE_TAPE)
    sink = Sink()
    faults = Faults(stall_after=20, stall_s=4.0)
    async with ReplayServer([BINANCE_TAPE], faults=faults) as server:
        venue = client(binance_feed(), sink, config(server.url, stale_after_s=0.4))
        await run_until(venue, lambda: set(sink.trade_ids()) == expected)
    assert venue.stats.disconnects == ["stale"]
    assert server.connections == 2
    assert sorted(sink.trade_ids()) == sorted(expected)


async def test_garbage_frames_are_dead_lettered_with_raw_bytes_and_the_feed_continues() -> None:
    expected = expected_trade_ids(binance_feed(), BINANCE_TAPE)
    bad_trade = json.loads(BINANCE_TAPE[0])
    nan_price = json.dumps({**bad_trade, "data": {**bad_trade["data"], "p": "NaN"}})
    doge = json.dumps({**bad_trade, "data": {**bad_trade["data"], "s": "DOGEUSDT"}})
    future = json.dumps({**bad_trade, "data": {**bad_trade["data"], "T": 4_102_444_800_000}})
    garbage: list[str | bytes] = [b"\x00\xff\x13binary junk", BINANCE_TAPE[3][:37],
                                  nan_price, doge, future]
    before = REGISTRY.get_sample_value("propstream_md_rejected_frames_total",
                                       {"venue": "binance", "reason": "malformed-json"}) or 0.0
    sink = Sink()
    async with ReplayServer([BINANCE_TAPE], faults=Faults(inject={7: garbage})) as server:
        venue = client(binance_feed(), sink, config(server.url))
        await run_until(venue, lambda: set(sink.trade_ids()) == expected)
    assert sink.dead == [
        (b"\x00\xff\x13binary junk", "malformed-json"),
        (BINANCE_TAPE[3][:37].encode(), "malformed-json"),
        (nan_price.encode(), "invalid-price"),
        (doge.encode(), "unknown-symbol"),
        (future.encode(), "future-timestamp"),
    ]
    assert server.connections == 1 and venue.stats.disconnects == []
    after = REGISTRY.get_sample_value("propstream_md_rejected_frames_total",
                                      {"venue": "binance", "reason": "malformed-json"})
    assert after == before + 2


def last_quote(feed: VenueFeed, tape: list[str]) -> Tick:
    quotes: list[Tick] = []
    for line in tape:
        result = feed.parse(line, NOW_NS)
        assert isinstance(result, list)
        quotes.extend(tick for tick in result if tick.trade_id is None)
    return quotes[-1]


@pytest.mark.parametrize(
    ("tapes", "faults"),
    [
        ([KALSHI_GAP_TAPE, KALSHI_TAPE], Faults()),
        ([KALSHI_TAPE], Faults(skip_first_pass=frozenset({DELTA_SEQ_20}))),
    ],
    ids=["gap-tape", "server-skips-a-seq"],
)
async def test_kalshi_gap_triggers_a_resync(tapes: list[list[str]], faults: Faults) -> None:
    final = last_quote(kalshi_feed(), KALSHI_TAPE)
    sink = Sink()
    async with ReplayServer(tapes, faults=faults) as server:
        venue = client(kalshi_feed(), sink, config(server.url))
        await run_until(venue, lambda: len(server.subscribes) == 2 and server.finished.is_set()
                        and any(t.trade_id is None and t == final for t in sink.ticks[-3:]))
    commands = [json.loads(m) for m in server.received]
    assert [c["cmd"] for c in commands] == ["subscribe", "unsubscribe", "subscribe"]
    assert commands[1]["params"] == {"sids": [1]}
    assert commands[2]["params"] == {"channels": ["orderbook_delta"],
                                     "market_tickers": [KALSHI_TICKER]}
    assert venue.stats.gaps == 1 and server.connections == 1
    assert sorted(sink.trade_ids()) == sorted(expected_trade_ids(kalshi_feed(), KALSHI_TAPE))


async def test_polymarket_client_keeps_alive_and_delivers_the_tape() -> None:
    assets = {PM_YES: "PM-FEDCUT-JAN26-YES", PM_NO: "PM-FEDCUT-JAN26-NO"}
    expected = expected_trade_ids(PolymarketFeed(assets), POLYMARKET_TAPE)
    sink = Sink()
    async with ReplayServer([POLYMARKET_TAPE], interval_s=0.02) as server:
        venue = client(PolymarketFeed(assets), sink, config(server.url),
                       deduper=Deduper(per_symbol=100))
        await run_until(venue, lambda: set(sink.trade_ids()) == expected
                        and server.finished.is_set() and "PING" in server.received)
    assert sorted(sink.trade_ids()) == sorted(expected)
    assert json.loads(server.subscribes[0]) == {"assets_ids": [PM_YES, PM_NO], "type": "market",
                                                "custom_feature_enabled": True}
    assert sink.dead == []


async def test_polymarket_client_hands_a_market_resolution_to_its_callback() -> None:
    assets = {PM_YES: "PM-FEDCUT-JAN26-YES", PM_NO: "PM-FEDCUT-JAN26-NO"}
    frame = json.dumps({"event_type": "market_resolved", "id": "1", "market": "0xabc",
                        "assets_ids": [PM_YES, PM_NO], "winning_asset_id": PM_YES,
                        "winning_outcome": "Yes", "timestamp": str(NOW_NS // 1_000_000)})
    got: list[Resolution] = []

    async def on_resolutions(resolutions: list[Resolution]) -> None:
        got.extend(resolutions)

    sink = Sink()
    async with ReplayServer([[frame]], interval_s=0.02) as server:
        venue = client(PolymarketFeed(assets), sink, config(server.url),
                       on_resolutions=on_resolutions)
        await run_until(venue, lambda: len(got) == 2)
    assert {(r.instrument, r.outcome) for r in got} == {("PM-FEDCUT-JAN26-YES", 1),
                                                        ("PM-FEDCUT-JAN26-NO", 0)}
    assert sink.ticks == [] and sink.dead == [] and venue.stats.resolutions == 2
