"""Venue frames to ticks, refusals with reasons, gaps; no IO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_data.adapters.venues.backoff import Backoff
from market_data.domain.ticks import Tick
from market_data.domain.venues.binance import BinanceFeed
from market_data.domain.venues.common import (
    GapDetected,
    ParseError,
    ParseResult,
    Reject,
    Resolution,
    TimeGuard,
)
from market_data.domain.venues.dedupe import Deduper
from market_data.domain.venues.kalshi import KalshiFeed
from market_data.domain.venues.polymarket import PolymarketFeed
from tests.data.venues.make_tapes import KALSHI_TICKER, NOW_NS, PM_NO, PM_YES, START_MS

TAPES = Path(__file__).parents[3] / "tests" / "data" / "venues"
T_MS = START_MS + 60_000
SYMBOLS = {"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD"}
ASSETS = {PM_YES: "PM-FEDCUT-JAN26-YES", PM_NO: "PM-FEDCUT-JAN26-NO"}
MARKETS = {KALSHI_TICKER: "PM-KXFED-JAN26-H0"}


def binance(**kwargs: Any) -> BinanceFeed:
    return BinanceFeed(SYMBOLS, streams=("trade", "aggTrade", "bookTicker", "kline_1m"),
                       **kwargs)


def frame(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def trade(**overrides: Any) -> str:
    data = {"e": "trade", "E": T_MS + 1, "s": "BTCUSDT", "t": 12345, "p": "94210.50",
            "q": "0.01200", "T": T_MS, "m": True, "M": True}
    data.update(overrides)
    return frame("btcusdt@trade", data)


def ticks(result: ParseResult) -> list[Tick]:
    assert isinstance(result, list), result
    assert all(isinstance(t, Tick) for t in result), result
    return result


def reason(result: ParseResult) -> str:
    assert isinstance(result, ParseError), result
    return result.reason


# Binance ---------------------------------------------------------------------------------


def test_binance_trade_when_buyer_is_maker_is_a_sell_with_the_venue_trade_id() -> None:
    [tick] = ticks(binance().parse(trade(), NOW_NS))
    assert tick == Tick(instrument="BTC-USD", venue="binance", price=94210.5, size=0.012,
                        venue_ts_ns=T_MS * 1_000_000, received_ts_ns=NOW_NS, side="sell",
                        trade_id="12345")


def test_binance_agg_trade_ids_do_not_collide_with_trade_ids() -> None:
    data = {"e": "aggTrade", "E": T_MS, "s": "ETHUSDT", "a": 12345, "p": "3345.1", "q": "2",
            "f": 100, "l": 105, "T": T_MS, "m": False, "M": True}
    [tick] = ticks(binance().parse(frame("ethusdt@aggTrade", data), NOW_NS))
    assert (tick.instrument, tick.side, tick.trade_id) == ("ETH-USD", "buy", "agg:12345")


def test_binance_book_ticker_is_a_quote_tick_at_the_mid_with_zero_size() -> None:
    data = {"u": 400900217, "s": "BTCUSDT", "b": "100.0", "B": "31.2", "a": "100.5", "A": "40"}
    [tick] = ticks(binance().parse(frame("btcusdt@bookTicker", data), NOW_NS))
    assert (tick.bid, tick.ask, tick.price, tick.size) == (100.0, 100.5, 100.25, 0.0)
    assert tick.side is None and tick.trade_id is None


def kline(closed: bool, **k: Any) -> str:
    body = {"t": START_MS, "T": START_MS + 59_999, "s": "BTCUSDT", "i": "1m", "o": "100",
            "c": "101", "h": "102", "l": "99", "v": "12.5", "x": closed}
    body.update(k)
    return frame("btcusdt@kline_1m", {"e": "kline", "E": T_MS, "s": "BTCUSDT", "k": body})


def test_binance_closed_kline_is_a_tick_only_when_asked() -> None:
    assert ticks(binance().parse(kline(True), NOW_NS)) == []
    [bar] = ticks(binance(klines_as_ticks=True).parse(kline(True), NOW_NS))
    assert (bar.price, bar.size, bar.trade_id) == (101.0, 12.5, f"kline:1m:{START_MS}")
    assert ticks(binance(klines_as_ticks=True).parse(kline(False), NOW_NS)) == []


def test_binance_kline_with_close_above_high_is_rejected() -> None:
    assert reason(binance().parse(kline(True, c="103"), NOW_NS)) == "invalid-price"


def test_binance_subscribe_and_its_reply() -> None:
    [message] = BinanceFeed({"BTCUSDT": "BTC-USD"}).subscribe_messages()
    assert json.loads(message) == {"method": "SUBSCRIBE", "id": 1,
                                   "params": ["btcusdt@trade", "btcusdt@bookTicker"]}
    assert binance().parse('{"result":null,"id":1}', NOW_NS) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"stream":"btcusdt@trade","data":{"e":"trade"', "malformed-json"),
        (b"\x00\xff\xfe garbage", "malformed-json"),
        ("[1, 2]", "not-an-object"),
        (trade(s="DOGEUSDT"), "unknown-symbol"),
        (trade(p="NaN"), "invalid-price"),
        (trade(p="-1.5"), "invalid-price"),
        (trade(p="0"), "invalid-price"),
        (trade(p="abc"), "invalid-price"),
        (trade(q="0"), "invalid-size"),
        (trade(T=T_MS + 3_600_000), "future-timestamp"),
        (trade(T=T_MS - 86_400_000), "stale-timestamp"),
        (trade(t=None), "missing-field"),
        (trade(m="yes"), "invalid-field"),
        (frame("btcusdt@depth", {"e": "depthUpdate"}), "unknown-event"),
        (frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": "101", "B": "1",
                                      "a": "100", "A": "1"}), "crossed-quote"),
        ('{"code": 2, "msg": "Invalid request"}', "venue-error"),
    ],
)
def test_binance_bad_frames_are_rejected_with_a_reason(raw: str | bytes, expected: str) -> None:
    assert reason(binance().parse(raw, NOW_NS)) == expected


def test_time_guard_bounds_are_configurable() -> None:
    feed = binance(guard=TimeGuard(max_age_ns=10**18, max_ahead_ns=10**18))
    assert ticks(feed.parse(trade(T=T_MS - 86_400_000), NOW_NS))


# Polymarket ------------------------------------------------------------------------------


def pm(event: dict[str, Any]) -> str:
    return json.dumps({"market": "0xabc", "timestamp": str(T_MS), **event})


def test_polymarket_book_gives_the_best_bid_and_ask() -> None:
    raw = pm({"event_type": "book", "asset_id": PM_YES, "hash": "0x1",
              "bids": [{"price": ".48", "size": "30"}, {"price": ".50", "size": "15"},
                       {"price": ".51", "size": "0"}],
              "asks": [{"price": ".53", "size": "60"}, {"price": ".52", "size": "25"}]})
    [tick] = ticks(PolymarketFeed(ASSETS).parse(raw, NOW_NS))
    assert (tick.instrument, tick.bid, tick.ask, tick.size) == ("PM-FEDCUT-JAN26-YES", 0.5,
                                                                0.52, 0.0)


def test_polymarket_price_change_skips_unmapped_assets_but_not_all_of_them() -> None:
    change = {"price": "0.5", "size": "200", "side": "BUY", "hash": "56",
              "best_bid": "0.5", "best_ask": "0.52"}
    raw = pm({"event_type": "price_change", "price_changes": [
        {"asset_id": PM_YES, **change}, {"asset_id": "999", **change}]})
    [tick] = ticks(PolymarketFeed(ASSETS).parse(raw, NOW_NS))
    assert tick.instrument == "PM-FEDCUT-JAN26-YES"
    only_unknown = pm({"event_type": "price_change",
                       "price_changes": [{"asset_id": "999", **change}]})
    assert reason(PolymarketFeed(ASSETS).parse(only_unknown, NOW_NS)) == "unknown-symbol"


def test_polymarket_last_trade_is_a_trade_keyed_by_transaction_hash_or_its_fields() -> None:
    base = {"event_type": "last_trade_price", "asset_id": PM_YES, "price": "0.456",
            "size": "219.217767", "side": "SELL", "fee_rate_bps": "0"}
    [with_hash] = ticks(PolymarketFeed(ASSETS).parse(pm({**base, "transaction_hash": "0xf"}),
                                                     NOW_NS))
    assert (with_hash.side, with_hash.trade_id, with_hash.price) == ("sell", "0xf", 0.456)
    [without] = ticks(PolymarketFeed(ASSETS).parse(pm(base), NOW_NS))
    assert without.trade_id == f"{T_MS}:0.456:219.217767:SELL"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"event_type": "last_trade_price", "asset_id": "42", "price": "0.5", "size": "1",
          "side": "BUY"}, "unknown-symbol"),
        ({"event_type": "last_trade_price", "asset_id": PM_YES, "price": "1.5", "size": "1",
          "side": "BUY"}, "invalid-price"),
        ({"event_type": "last_trade_price", "asset_id": PM_YES, "price": "nan", "size": "1",
          "side": "BUY"}, "invalid-price"),
        ({"event_type": "last_trade_price", "asset_id": PM_YES, "price": "0.5", "size": "1",
          "side": "HOLD"}, "invalid-field"),
        ({"event_type": "order", "asset_id": PM_YES}, "unknown-event"),
        ({"event_type": "book", "asset_id": PM_YES, "bids": []}, "missing-field"),
        ({"event_type": "book", "asset_id": PM_YES, "timestamp": str(T_MS + 86_400_000),
          "bids": [], "asks": []}, "future-timestamp"),
    ],
)
def test_polymarket_bad_events_are_rejected_with_a_reason(
    event: dict[str, Any], expected: str
) -> None:
    assert reason(PolymarketFeed(ASSETS).parse(pm(event), NOW_NS)) == expected


def test_polymarket_keepalive_and_subscribe() -> None:
    feed = PolymarketFeed(ASSETS)
    assert feed.parse("PONG", NOW_NS) == []
    assert feed.heartbeat_message() == "PING"
    [message] = feed.subscribe_messages()
    assert json.loads(message) == {"assets_ids": [PM_YES, PM_NO], "type": "market",
                                   "custom_feature_enabled": True}


def resolved(winner: str, assets: list[str] | None = None, **extra: Any) -> str:
    return pm({"event_type": "market_resolved", "id": "123",
               "assets_ids": [PM_YES, PM_NO] if assets is None else assets,
               "winning_asset_id": winner, "winning_outcome": "Yes", **extra})


def test_polymarket_market_resolved_pays_the_winning_asset_1_and_the_other_0() -> None:
    result = PolymarketFeed(ASSETS).parse(resolved(PM_NO), NOW_NS)
    assert result == [
        Resolution("PM-FEDCUT-JAN26-YES", 0, "polymarket", T_MS * 1_000_000),
        Resolution("PM-FEDCUT-JAN26-NO", 1, "polymarket", T_MS * 1_000_000)]


def test_polymarket_market_resolved_long_ago_still_counts() -> None:
    old = resolved(PM_YES).replace(str(T_MS), str(T_MS - 86_400_000))
    [yes, _] = PolymarketFeed(ASSETS).parse(old, NOW_NS)  # type: ignore[misc]
    assert isinstance(yes, Resolution) and yes.outcome == 1


def test_polymarket_new_market_is_ignored() -> None:
    assert PolymarketFeed(ASSETS).parse(json.dumps({"event_type": "new_market"}), NOW_NS) == []


@pytest.mark.parametrize(("raw", "expected"), [
    (resolved("999"), "invalid-field"),
    (resolved("777", assets=["777", "778"]), "unknown-symbol"),
    (resolved(PM_YES, assets=[]), "invalid-field"),
    (pm({"event_type": "market_resolved", "assets_ids": [PM_YES]}), "missing-field"),
])
def test_polymarket_bad_resolutions_are_rejected_with_a_reason(raw: str, expected: str) -> None:
    assert reason(PolymarketFeed(ASSETS).parse(raw, NOW_NS)) == expected


# Kalshi ----------------------------------------------------------------------------------


def snapshot(sid: int = 1, seq: int = 1) -> str:
    return json.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": {
        "market_ticker": KALSHI_TICKER, "yes": [[38, 120], [41, 540]], "no": [[55, 200],
                                                                              [57, 410]]}})


def delta(seq: int, price: int, qty: int, side: str, sid: int = 1, **extra: Any) -> str:
    return json.dumps({"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": {
        "market_ticker": KALSHI_TICKER, "price": price, "delta": qty, "side": side, **extra}})


def test_kalshi_snapshot_quotes_yes_as_a_probability() -> None:
    [tick] = ticks(KalshiFeed(MARKETS).parse(snapshot(), NOW_NS))
    assert (tick.instrument, tick.bid, tick.ask) == ("PM-KXFED-JAN26-H0", 0.41, 0.43)


def test_kalshi_delta_moves_the_top_and_an_unchanged_top_emits_nothing() -> None:
    feed = KalshiFeed(MARKETS)
    feed.parse(snapshot(), NOW_NS)
    assert ticks(feed.parse(delta(2, 38, 5, "yes"), NOW_NS)) == []
    [tick] = ticks(feed.parse(delta(3, 41, -540, "yes", ts=T_MS // 1000), NOW_NS))
    assert (tick.bid, tick.ask, tick.venue_ts_ns) == (0.38, 0.43, T_MS * 1_000_000)
    [tick] = ticks(feed.parse(delta(4, 58, 10, "no", ts="2026-01-01T00:01:00Z"), NOW_NS))
    assert tick.ask == 0.42
    book = feed.book(1)
    assert book is not None and book.yes == {38: 125.0} and book.seq == 4


def test_kalshi_gap_voids_the_book_until_a_new_snapshot() -> None:
    feed = KalshiFeed(MARKETS)
    feed.parse(snapshot(), NOW_NS)
    gap = feed.parse(delta(3, 38, 5, "yes"), NOW_NS)
    assert gap == GapDetected(sid=1, expected=2, received=3, market=KALSHI_TICKER)
    assert feed.book(1) is None
    assert feed.parse(delta(4, 38, 5, "yes"), NOW_NS) == []
    unsubscribe, subscribe = (json.loads(m) for m in feed.resync_messages(gap))
    assert unsubscribe["cmd"] == "unsubscribe" and unsubscribe["params"] == {"sids": [1]}
    assert subscribe["cmd"] == "subscribe"
    assert subscribe["params"]["market_tickers"] == [KALSHI_TICKER]
    assert ticks(feed.parse(snapshot(seq=1), NOW_NS))
    assert feed.parse(delta(2, 38, 5, "yes"), NOW_NS) == []


def test_kalshi_repeated_seq_is_ignored() -> None:
    feed = KalshiFeed(MARKETS)
    feed.parse(snapshot(), NOW_NS)
    feed.parse(delta(2, 38, 5, "yes"), NOW_NS)
    assert feed.parse(delta(2, 38, 5, "yes"), NOW_NS) == []
    book = feed.book(1)
    assert book is not None and book.yes[38] == 125.0


def test_kalshi_trade_is_priced_in_yes_probability_and_no_taker_sells_yes() -> None:
    raw = json.dumps({"type": "trade", "sid": 2, "seq": 1, "msg": {
        "trade_id": "f851595a", "market_ticker": KALSHI_TICKER, "yes_price": 36,
        "no_price": 64, "count": 136, "taker_side": "no", "ts": T_MS // 1000}})
    [tick] = ticks(KalshiFeed(MARKETS).parse(raw, NOW_NS))
    assert (tick.price, tick.size, tick.side, tick.trade_id) == (0.36, 136.0, "sell",
                                                                 "f851595a")


def test_kalshi_dollar_fields_are_read_when_cents_are_absent() -> None:
    raw = json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
        "market_ticker": KALSHI_TICKER, "yes_dollars": [["0.4100", 10]],
        "no_dollars": [["0.5700", 5]]}})
    [tick] = ticks(KalshiFeed(MARKETS).parse(raw, NOW_NS))
    assert (tick.bid, tick.ask) == (0.41, 0.43)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (delta(2, 38, 5, "yes"), "no-snapshot"),
        (snapshot().replace(KALSHI_TICKER, "KXUNKNOWN-1"), "unknown-symbol"),
        (snapshot().replace("[38, 120]", "[0, 120]"), "invalid-price"),
        (snapshot().replace("[38, 120]", "[100, 120]"), "invalid-price"),
        (snapshot().replace("[38, 120]", "[38.5, 120]"), "invalid-price"),
        (snapshot().replace("[38, 120]", "[38, -1]"), "invalid-size"),
        ('{"type": "orderbook_snapshot", "sid": 1', "malformed-json"),
        ('{"type": "fill", "sid": 1}', "unknown-event"),
        ('{"id": 1, "type": "error", "msg": {"code": 8, "msg": "Unknown channel"}}',
         "venue-error"),
    ],
)
def test_kalshi_bad_frames_are_rejected_with_a_reason(raw: str, expected: str) -> None:
    assert reason(KalshiFeed(MARKETS).parse(raw, NOW_NS)) == expected


# Tapes, dedupe, backoff ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tape", "feed"),
    [
        ("binance_combined.jsonl", binance()),
        ("polymarket_market.jsonl", PolymarketFeed(ASSETS)),
        ("kalshi_orderbook.jsonl", KalshiFeed(MARKETS)),
    ],
)
def test_every_frame_of_a_clean_tape_parses(tape: str, feed: Any) -> None:
    for line in (TAPES / tape).read_text().splitlines():
        assert isinstance(feed.parse(line, NOW_NS), list), line


def test_the_gap_tape_has_exactly_one_gap() -> None:
    feed = KalshiFeed(MARKETS)
    results = [feed.parse(line, NOW_NS)
               for line in (TAPES / "kalshi_orderbook_gap.jsonl").read_text().splitlines()]
    assert [r for r in results if not isinstance(r, list)] == [
        GapDetected(sid=1, expected=12, received=13, market=KALSHI_TICKER)]


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_no_parser_raises_whatever_the_bytes(raw: bytes | str) -> None:
    for feed in (binance(), PolymarketFeed(ASSETS), KalshiFeed(MARKETS)):
        assert isinstance(feed.parse(raw, NOW_NS), list | ParseError | GapDetected)


def test_deduper_drops_repeats_per_symbol_and_forgets_the_oldest() -> None:
    dedupe = Deduper(per_symbol=2)
    assert not dedupe.is_duplicate("BTC-USD", "1")
    assert not dedupe.is_duplicate("ETH-USD", "1")
    assert dedupe.is_duplicate("BTC-USD", "1")
    assert not dedupe.is_duplicate("BTC-USD", "2")
    assert not dedupe.is_duplicate("BTC-USD", "3")  # evicts "1"
    assert not dedupe.is_duplicate("BTC-USD", "1")
    assert len(dedupe) == 3


def test_backoff_ceiling_doubles_up_to_the_cap_and_the_jitter_scales_it() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(2, lambda: 0.25) == 0.5
    assert backoff.ceiling(10_000) == 4.0


_FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**70), st.floats(),
                          st.text(max_size=8), st.sampled_from(
                              ["94210.50", "0", "-1", "nan", "inf", "1e400", "btcusdt",
                               "ETHUSDT", "trade", "aggTrade"]),
                          st.lists(st.integers(), max_size=2))


@given(changes=st.dictionaries(st.sampled_from(["e", "s", "t", "p", "q", "T", "m", "E"]),
                               _FIELD_VALUES, max_size=3),
       dropped=st.sets(st.sampled_from(["e", "s", "t", "p", "q", "T", "m"]), max_size=2),
       stream=st.sampled_from(["btcusdt@trade", "ethusdt@aggTrade", "btcusdt@bookTicker",
                               "x@trade", None]))
def test_the_typed_trade_path_decides_exactly_as_the_careful_parser(
        changes: dict[str, Any], dropped: set[str], stream: str | None) -> None:
    # `parse` tries a typed msgspec decode of the usual trade first; whatever it accepts
    # must be what the dict-based parser (`_parse`, which alone decides refusals) returns.
    data: dict[str, Any] = {"e": "trade", "E": T_MS + 1, "s": "BTCUSDT", "t": 12345,
                            "p": "94210.50", "q": "0.01200", "T": T_MS, "m": True, "M": True}
    data.update(changes)
    for key in dropped:
        data.pop(key, None)
    raw = json.dumps(data if stream is None else {"stream": stream, "data": data})
    feed = binance()
    try:
        careful: ParseResult = feed._parse(raw, NOW_NS)
    except Reject as rejected:
        careful = rejected.error
    assert feed.parse(raw, NOW_NS) == careful
    assert binance().parse(raw.encode(), NOW_NS) == careful


def lifecycle(event_type: str, ticker: str = KALSHI_TICKER, **fields: Any) -> str:
    return json.dumps({"type": "market_lifecycle_v2", "sid": 9, "msg": {
        "market_ticker": ticker, "event_type": event_type, **fields}})


def test_kalshi_lifecycle_subscribes_apart_and_only_when_asked() -> None:
    assert len(KalshiFeed(MARKETS).subscribe_messages()) == 1
    _, extra = (json.loads(m) for m in KalshiFeed(MARKETS, lifecycle=True).subscribe_messages())
    assert extra["cmd"] == "subscribe" and extra["params"] == {"channels": ["market_lifecycle_v2"]}


def test_kalshi_settlement_resolves_with_the_determined_result() -> None:
    feed = KalshiFeed(MARKETS, lifecycle=True)
    assert feed.parse(lifecycle("determined", result="no", determination_ts=1_767_225_600,
                                settlement_value=0), NOW_NS) == []
    settled = feed.parse(lifecycle("settled", settled_ts=1_767_225_700), NOW_NS)
    assert settled == [Resolution("PM-KXFED-JAN26-H0", 0, "kalshi",
                                  1_767_225_700 * 1_000_000_000)]
    assert feed.parse(lifecycle("settled", settled_ts=1_767_225_700), NOW_NS) == settled


def test_kalshi_an_amended_determination_replaces_the_first() -> None:
    feed = KalshiFeed(MARKETS, lifecycle=True)
    feed.parse(lifecycle("determined", result="no"), NOW_NS)
    feed.parse(lifecycle("disputed"), NOW_NS)
    feed.parse(lifecycle("amended", result="yes"), NOW_NS)
    [resolution] = feed.parse(lifecycle("settled", settled_ts=1_767_225_700), NOW_NS)
    assert isinstance(resolution, Resolution) and resolution.outcome == 1


@pytest.mark.parametrize("frames", [
    [lifecycle("settled", settled_ts=1_767_225_700)],  # determined before we listened
    [lifecycle("determined", result="void"), lifecycle("settled", settled_ts=1)],
    [lifecycle("determined", result="yes"), lifecycle("closed")],
    [lifecycle("settled", ticker="KXOTHER-1", result="yes", settled_ts=1)],  # not ours
    [json.dumps({"type": "event_lifecycle", "sid": 9, "msg": {"event_ticker": "KXFED"}})],
])
def test_kalshi_lifecycle_frames_that_settle_nothing_give_nothing(frames: list[str]) -> None:
    feed = KalshiFeed(MARKETS, lifecycle=True)
    assert [feed.parse(f, NOW_NS) for f in frames][-1] == []


def test_kalshi_settlement_without_its_time_is_refused() -> None:
    feed = KalshiFeed(MARKETS, lifecycle=True)
    assert reason(feed.parse(lifecycle("settled", result="yes"), NOW_NS)) == "missing-field"
