"""Write the venue tapes under tests/data/venues (one WebSocket frame per line).

The frames follow each venue's documented message format (see the docstrings of
market_data/domain/venues/{binance,polymarket,kalshi}.py); the values are generated from a
fixed seed, so running this again gives the same files.
Run: `python tests/data/venues/make_tapes.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the tapes' clock origin
NOW_NS = (START_MS + 120_000) * 1_000_000  # the receive time tests pretend it is

PM_MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"
PM_YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
PM_NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
KALSHI_TICKER = "KXFEDDECISION-26JAN-H0"


def _dump(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def binance() -> list[str]:
    rng = random.Random(7)
    frames: list[str] = []
    state = {"BTCUSDT": [94_210.50, 5_123_400_000, 3_001_200_000, 71_000_000_000],
             "ETHUSDT": [3_345.12, 2_210_900_000, 1_455_700_000, 44_000_000_000]}
    resend: list[str] = []
    for step in range(40):
        t_ms = START_MS + step * 1_000 + rng.randint(0, 200)
        symbol = "BTCUSDT" if step % 2 == 0 else "ETHUSDT"
        last, trade_id, agg_id, update_id = state[symbol]
        tick = 0.01
        last = round(last * (1 + rng.gauss(0, 0.0002)), 2)
        qty = f"{rng.uniform(0.0005, 0.8):.5f}"
        maker = rng.random() < 0.5
        trade_id += rng.randint(1, 5)
        trade = {"e": "trade", "E": t_ms + 1, "s": symbol, "t": trade_id, "p": f"{last:.2f}",
                 "q": qty, "T": t_ms, "m": maker, "M": True}
        frames.append(_dump({"stream": f"{symbol.lower()}@trade", "data": trade}))
        if step in (5, 17, 30):
            resend.append(frames[-1])
        agg_id += 1
        agg = {"e": "aggTrade", "E": t_ms + 1, "s": symbol, "a": agg_id, "p": f"{last:.2f}",
               "q": qty, "f": trade_id, "l": trade_id, "T": t_ms, "m": maker, "M": True}
        frames.append(_dump({"stream": f"{symbol.lower()}@aggTrade", "data": agg}))
        update_id += rng.randint(1, 40)
        spread = tick * rng.randint(1, 3)
        book = {"u": update_id, "s": symbol, "b": f"{last - spread:.2f}",
                "B": f"{rng.uniform(0.1, 4):.5f}", "a": f"{last + spread:.2f}",
                "A": f"{rng.uniform(0.1, 4):.5f}"}
        frames.append(_dump({"stream": f"{symbol.lower()}@bookTicker", "data": book}))
        if resend and step % 6 == 5:
            frames.append(resend.pop(0))  # the venue sends a trade it already sent
        if step % 10 == 9:
            open_ms = START_MS + (step // 10) * 60_000
            kline = {"e": "kline", "E": t_ms + 2, "s": symbol, "k": {
                "t": open_ms, "T": open_ms + 59_999, "s": symbol, "i": "1m", "f": trade_id - 9,
                "L": trade_id, "o": f"{last * 0.999:.2f}", "c": f"{last:.2f}",
                "h": f"{last * 1.001:.2f}", "l": f"{last * 0.998:.2f}", "v": "12.48210",
                "n": 10, "x": step % 20 == 19, "q": f"{12.4821 * last:.2f}", "V": "6.10000",
                "Q": f"{6.1 * last:.2f}", "B": "0"}}
            frames.append(_dump({"stream": f"{symbol.lower()}@kline_1m", "data": kline}))
        state[symbol] = [last, trade_id, agg_id, update_id]
    frames.extend(resend)
    return frames


def polymarket() -> list[str]:
    rng = random.Random(11)
    frames: list[str] = []
    ts = START_MS
    dump = [
        {"event_type": "book", "asset_id": PM_YES, "market": PM_MARKET,
         "bids": [{"price": ".48", "size": "30"}, {"price": ".49", "size": "20"},
                  {"price": ".50", "size": "15"}],
         "asks": [{"price": ".52", "size": "25"}, {"price": ".53", "size": "60"},
                  {"price": ".54", "size": "10"}],
         "timestamp": str(ts), "hash": "0x9d1c0a7e"},
        {"event_type": "book", "asset_id": PM_NO, "market": PM_MARKET,
         "bids": [{"price": ".48", "size": "40"}, {"price": ".47", "size": "90"}],
         "asks": [{"price": ".50", "size": "35"}, {"price": ".51", "size": "12"}],
         "timestamp": str(ts), "hash": "0x3b7ac04f"},
    ]
    frames.append(_dump(dump))
    bid = 0.50
    trades: list[str] = []
    for step in range(30):
        ts = START_MS + (step + 1) * 1_500 + rng.randint(0, 300)
        bid = min(0.95, max(0.05, round(bid + rng.choice((-0.01, 0.0, 0.01)), 2)))
        ask = round(bid + 0.02, 2)
        if step % 3 == 2:
            side = rng.choice(("BUY", "SELL"))
            trade = {"event_type": "last_trade_price", "asset_id": PM_YES, "market": PM_MARKET,
                     "price": f"{ask if side == 'BUY' else bid:.2f}",
                     "size": f"{rng.randint(5, 400)}", "side": side, "fee_rate_bps": "0",
                     "timestamp": str(ts),
                     "transaction_hash": f"0x{rng.getrandbits(128):032x}"}
            frames.append(_dump(trade))
            trades.append(frames[-1])
            if step == 14:
                frames.append(trades[0])  # a print sent twice
            continue
        change = {"event_type": "price_change", "market": PM_MARKET, "timestamp": str(ts),
                  "price_changes": [
                      {"asset_id": PM_YES, "price": f"{bid:.2f}", "size": f"{rng.randint(1, 300)}",
                       "side": "BUY", "hash": f"{rng.getrandbits(160):040x}",
                       "best_bid": f"{bid:.2f}", "best_ask": f"{ask:.2f}"},
                      {"asset_id": PM_NO, "price": f"{1 - ask:.2f}",
                       "size": f"{rng.randint(1, 300)}", "side": "SELL",
                       "hash": f"{rng.getrandbits(160):040x}",
                       "best_bid": f"{1 - ask:.2f}", "best_ask": f"{1 - bid:.2f}"}]}
        frames.append(_dump(change))
        if step == 10:
            frames.append(_dump({"event_type": "tick_size_change", "asset_id": PM_YES,
                                 "market": PM_MARKET, "old_tick_size": "0.01",
                                 "new_tick_size": "0.001", "timestamp": str(ts)}))
    return frames


def kalshi(*, gap_at: int | None = None) -> list[str]:
    """Snapshot + deltas on sid 1 (seq from 1), trades on sid 2; `gap_at` drops that seq."""
    rng = random.Random(13)
    frames = [
        _dump({"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}}),
        _dump({"id": 1, "type": "subscribed", "msg": {"channel": "trade", "sid": 2}}),
    ]
    yes = {38: 120, 39: 310, 40: 95, 41: 540}
    no = {55: 200, 56: 75, 57: 410}
    frames.append(_dump({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
        "market_ticker": KALSHI_TICKER, "market_id": "9b0f6c1e-5c1a-4a53-8d3e-2f6c71c0e2aa",
        "yes": [[p, q] for p, q in sorted(yes.items())],
        "no": [[p, q] for p, q in sorted(no.items())]}}))
    seq, trade_seq = 1, 0
    for step in range(40):
        ts_s = START_MS // 1000 + step + 1
        side = rng.choice(("yes", "no"))
        levels = yes if side == "yes" else no
        other = no if side == "yes" else yes
        inside = max(levels) + 1 if levels else 30
        # A new best level only while the book stays uncrossed, as on the venue.
        candidates = sorted(levels) + ([inside] if inside + max(other) < 100 else [])
        level = rng.choice(candidates)
        current = levels.get(level, 0)
        delta = rng.randint(-current, 250) if current else rng.randint(10, 250)
        delta = delta or 5
        if current + delta <= 0:
            levels.pop(level, None)
        else:
            levels[level] = current + delta
        seq += 1
        if seq != gap_at:
            frames.append(_dump({"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": {
                "market_ticker": KALSHI_TICKER,
                "market_id": "9b0f6c1e-5c1a-4a53-8d3e-2f6c71c0e2aa", "price": level,
                "price_dollars": f"{level / 100:.4f}", "delta": delta,
                "delta_fp": f"{delta:.2f}", "side": side, "ts": ts_s}}))
        if step % 8 == 7:
            trade_seq += 1
            yes_price = max(yes)
            frames.append(_dump({"type": "trade", "sid": 2, "seq": trade_seq, "msg": {
                "trade_id": f"{rng.getrandbits(128):032x}", "market_ticker": KALSHI_TICKER,
                "yes_price": yes_price, "no_price": 100 - yes_price,
                "yes_price_dollars": f"{yes_price / 100:.4f}",
                "no_price_dollars": f"{(100 - yes_price) / 100:.4f}",
                "count": rng.randint(1, 60), "taker_side": rng.choice(("yes", "no")),
                "ts": ts_s}}))
    return frames


def main() -> None:
    tapes = {
        "binance_combined.jsonl": binance(),
        "polymarket_market.jsonl": polymarket(),
        "kalshi_orderbook.jsonl": kalshi(),
        "kalshi_orderbook_gap.jsonl": kalshi(gap_at=12),
    }
    for name, frames in tapes.items():
        (HERE / name).write_text("\n".join(frames) + "\n")


if __name__ == "__main__":
    main()
