"""Kalshi WebSocket v2 order book and trades to ticks.

Followed: Kalshi "WebSocket API" (docs.kalshi.com AsyncAPI, info.version 2.0.0), channels
`orderbook_delta` and `trade`. Fields used:

* envelope: `type`, `sid` (subscription id), `seq` (per-subscription sequence), `msg`, `id`
* `orderbook_snapshot`: msg.market_ticker, msg.yes / msg.no as [[price_cents, quantity]]
  (or msg.yes_dollars / msg.no_dollars as [["0.45", quantity]])
* `orderbook_delta`: msg.market_ticker, msg.price (cents; or price_dollars), msg.delta (or
  delta_fp), msg.side ("yes"/"no"), msg.ts where sent
* `trade`: msg.trade_id, market_ticker, yes_price (cents; or yes_price_dollars), count (or
  count_fp), taker_side, ts (seconds)
* commands: {"id", "cmd": "subscribe", "params": {"channels", "market_tickers"}} and
  {"id", "cmd": "unsubscribe", "params": {"sids"}}; replies `subscribed`, `ok`, `error`

The book holds bids only, on both sides: a NO bid at p is a YES ask at 100 - p. We quote the
YES contract as a probability: bid = best YES bid / 100, ask = (100 - best NO bid) / 100. A
quote tick is emitted when that top changes and both sides exist. A delta whose `seq` is not
the previous one plus one voids that subscription's book and yields `GapDetected`; its later
deltas are ignored until a new snapshot arrives (after the client resubscribes). A repeated
or older `seq` is ignored.

With `lifecycle`, the feed also subscribes to `market_lifecycle_v2` (every market's lifecycle:
it takes no ticker filter, so other markets' messages are ignored, not refused). Fields used:
msg.market_ticker, msg.event_type, msg.result ("yes"/"no"; others such as "void" or
"scalar" settle nothing here), msg.settled_ts (seconds). A determination may be disputed and
amended, so the result of `determined` (or `amended`) is only remembered, and a `Resolution`
is given on `settled`, with the result the settlement carries or the one remembered; a
settlement whose result is unknown (heard before we listened) gives nothing, and an admin
resolves the instrument instead. Repeated `settled` messages give the same `Resolution`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from market_data.domain.ticks import Tick
from market_data.domain.venues.common import (
    GapDetected,
    ParseResult,
    Reject,
    Resolution,
    TimeGuard,
    as_int,
    as_str,
    load_json,
    price,
    quote_tick,
    require,
    size,
    trade_tick,
)

VENUE = "kalshi"
NS = 1_000_000_000


@dataclass(slots=True)
class Book:
    """One subscription's book: price in cents to resting quantity, per side."""

    market: str
    seq: int
    yes: dict[int, float] = field(default_factory=dict)
    no: dict[int, float] = field(default_factory=dict)
    top: tuple[int, int] | None = None

    def best(self) -> tuple[int, int] | None:
        """(YES bid, YES ask) in cents, or None while a side is empty."""
        if not self.yes or not self.no:
            return None
        return max(self.yes), 100 - max(self.no)


class KalshiFeed:
    """Pure Kalshi knowledge plus the books it maintains from snapshots and deltas."""

    venue = VENUE

    def __init__(
        self,
        markets: Mapping[str, str],
        *,
        channels: tuple[str, ...] = ("orderbook_delta", "trade"),
        lifecycle: bool = False,
        guard: TimeGuard | None = None,
    ) -> None:
        self._markets = dict(markets)
        self._channels = channels
        self._lifecycle = lifecycle
        self._results: dict[str, Literal[0, 1] | None] = {}  # ticker -> determined result
        self._guard = guard or TimeGuard()
        self._books: dict[int, Book] = {}
        self._voided: set[int] = set()
        self._next_id = 1

    def book(self, sid: int) -> Book | None:
        return self._books.get(sid)

    def _command(self, cmd: str, params: dict[str, Any]) -> str:
        message = {"id": self._next_id, "cmd": cmd, "params": params}
        self._next_id += 1
        return json.dumps(message)

    def subscribe_messages(self) -> list[str]:
        params = {"channels": list(self._channels), "market_tickers": list(self._markets)}
        out = [self._command("subscribe", params)]
        if self._lifecycle:
            out.append(self._command("subscribe", {"channels": ["market_lifecycle_v2"]}))
        return out

    def resync_messages(self, gap: GapDetected) -> list[str]:
        return [
            self._command("unsubscribe", {"sids": [gap.sid]}),
            self._command("subscribe", {"channels": ["orderbook_delta"],
                                        "market_tickers": [gap.market]}),
        ]

    def heartbeat_message(self) -> str | None:
        return None  # Kalshi sends ping frames; the websocket layer answers

    def reset(self) -> None:
        self._books.clear()
        self._voided.clear()

    def parse(self, raw: bytes | str, received_ts_ns: int) -> ParseResult:
        try:
            frame = load_json(raw)
            if not isinstance(frame, dict):
                raise Reject("not-an-object", type(frame).__name__)
            kind = as_str(require(frame, "type"), "type")
            if kind == "orderbook_snapshot":
                return self._snapshot(frame, received_ts_ns)
            if kind == "orderbook_delta":
                return self._delta(frame, received_ts_ns)
            if kind == "trade":
                return [self._trade(frame, received_ts_ns)]
            if kind == "market_lifecycle_v2":
                return self._lifecycle_event(frame)
            if kind in ("subscribed", "unsubscribed", "ok", "event_lifecycle"):
                return []
            if kind == "error":
                raise Reject("venue-error", json.dumps(frame.get("msg"))[:200])
            raise Reject("unknown-event", kind)
        except Reject as rejected:
            return rejected.error

    def _lifecycle_event(self, frame: dict[str, Any]) -> list[Resolution]:
        msg = require(frame, "msg")
        ticker = as_str(require(msg, "market_ticker"), "market_ticker")
        instrument = self._markets.get(ticker)
        if instrument is None:
            return []  # the channel carries every market's lifecycle
        event = as_str(require(msg, "event_type"), "event_type")
        result = msg.get("result")
        outcome: Literal[0, 1] | None = (1 if result == "yes" else 0 if result == "no"
                                         else None)
        if event in ("determined", "amended"):
            self._results[ticker] = outcome
            return []
        if event != "settled":
            return []
        if outcome is None:
            outcome = self._results.get(ticker)
        if outcome is None:
            return []  # void, scalar, or determined before we listened
        settled = msg.get("settled_ts")
        if settled is None:
            raise Reject("missing-field", "settled_ts")
        return [Resolution(instrument=instrument, outcome=outcome, venue=VENUE,
                           venue_ts_ns=as_int(settled, "settled_ts") * NS)]

    def _instrument(self, msg: Any) -> tuple[str, str]:
        ticker = as_str(require(msg, "market_ticker"), "market_ticker")
        instrument = self._markets.get(ticker)
        if instrument is None:
            raise Reject("unknown-symbol", ticker)
        return ticker, instrument

    def _snapshot(self, frame: dict[str, Any], received_ts_ns: int) -> list[Tick]:
        sid = as_int(require(frame, "sid"), "sid")
        seq = as_int(require(frame, "seq"), "seq")
        msg = require(frame, "msg")
        ticker, instrument = self._instrument(msg)
        book = Book(market=ticker, seq=seq,
                    yes=_levels(msg, "yes"), no=_levels(msg, "no"))
        self._books[sid] = book
        self._voided.discard(sid)
        return self._quote_if_changed(book, instrument, received_ts_ns, received_ts_ns)

    def _delta(self, frame: dict[str, Any], received_ts_ns: int) -> ParseResult:
        sid = as_int(require(frame, "sid"), "sid")
        seq = as_int(require(frame, "seq"), "seq")
        msg = require(frame, "msg")
        _, instrument = self._instrument(msg)
        if sid in self._voided:
            return []
        book = self._books.get(sid)
        if book is None:
            raise Reject("no-snapshot", f"delta for sid {sid} before its snapshot")
        if seq <= book.seq:
            return []
        if seq != book.seq + 1:
            del self._books[sid]
            self._voided.add(sid)
            return GapDetected(sid=sid, expected=book.seq + 1, received=seq, market=book.market)
        cents = _cents(msg, "price", "price_dollars")
        delta = _number(msg, "delta", "delta_fp")
        side = as_str(require(msg, "side"), "side")
        if side not in ("yes", "no"):
            raise Reject("invalid-field", f"side={side}")
        venue_ts_ns = _timestamp(msg.get("ts"), received_ts_ns)
        self._guard.check(venue_ts_ns, received_ts_ns)
        levels = book.yes if side == "yes" else book.no
        remaining = levels.get(cents, 0.0) + delta
        if remaining > 0.0:
            levels[cents] = remaining
        else:
            levels.pop(cents, None)
        book.seq = seq
        return self._quote_if_changed(book, instrument, venue_ts_ns, received_ts_ns)

    @staticmethod
    def _quote_if_changed(
        book: Book, instrument: str, venue_ts_ns: int, received_ts_ns: int
    ) -> list[Tick]:
        top = book.best()
        if top is None or top == book.top:
            return []
        book.top = top
        return [quote_tick(instrument=instrument, venue=VENUE, bid=top[0] / 100,
                           ask=top[1] / 100, venue_ts_ns=venue_ts_ns,
                           received_ts_ns=received_ts_ns)]

    def _trade(self, frame: dict[str, Any], received_ts_ns: int) -> Tick:
        msg = require(frame, "msg")
        _, instrument = self._instrument(msg)
        trade_id = as_str(require(msg, "trade_id"), "trade_id")
        cents = _cents(msg, "yes_price", "yes_price_dollars")
        count = size(_number(msg, "count", "count_fp"), "count")
        taker = as_str(require(msg, "taker_side"), "taker_side")
        if taker not in ("yes", "no"):
            raise Reject("invalid-field", f"taker_side={taker}")
        venue_ts_ns = as_int(require(msg, "ts"), "ts") * NS
        self._guard.check(venue_ts_ns, received_ts_ns)
        # A taker buying NO sells YES: the tick speaks of the YES contract.
        return trade_tick(
            instrument=instrument, venue=VENUE, price=cents / 100, size=count,
            side="buy" if taker == "yes" else "sell", trade_id=trade_id,
            venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns,
        )


def _cents(msg: Any, cents_key: str, dollars_key: str) -> int:
    """A price in whole cents, 1 to 99, from the cents field or its dollar twin."""
    if isinstance(msg, dict) and msg.get(cents_key) is not None:
        value = price(msg[cents_key], cents_key, upper=99)
    else:
        value = price(require(msg, dollars_key), dollars_key, upper=0.99) * 100
    cents = round(value)
    if abs(value - cents) > 1e-6 or not 1 <= cents <= 99:
        raise Reject("invalid-price", f"{value} is not a whole cent between 1 and 99")
    return cents


def _number(msg: Any, key: str, fp_key: str) -> float:
    has_key = isinstance(msg, dict) and msg.get(key) is not None
    raw = msg[key] if has_key else require(msg, fp_key)
    if isinstance(raw, bool):
        raise Reject("invalid-field", f"{key} is a boolean")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise Reject("invalid-field", f"{key}={raw!r} is not a number") from None
    if not math.isfinite(number):
        raise Reject("invalid-field", f"{key}={raw!r} is not finite")
    return number


def _levels(msg: dict[str, Any], side: str) -> dict[int, float]:
    if msg.get(side) is not None:
        raw, dollars = msg[side], False
    elif msg.get(f"{side}_dollars") is not None:
        raw, dollars = msg[f"{side}_dollars"], True
    else:
        return {}  # an empty side is omitted
    if not isinstance(raw, list):
        raise Reject("invalid-field", f"{side} is not a list")
    levels: dict[int, float] = {}
    for level in raw:
        if not isinstance(level, list) or len(level) != 2:
            raise Reject("invalid-field", f"{side} level {level!r} is not [price, quantity]")
        cents = _cents({"dollars" if dollars else "cents": level[0]}, "cents", "dollars")
        quantity = size(level[1], f"{side} quantity", allow_zero=True)
        if quantity > 0.0:
            levels[cents] = quantity
    return levels


def _timestamp(ts: Any, received_ts_ns: int) -> int:
    """Delta times come as seconds or as ISO 8601; absent, the receive time stands in."""
    if ts is None:
        return received_ts_ns
    if isinstance(ts, str) and not ts.lstrip("-").isdigit():
        try:
            return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * NS)
        except ValueError:
            raise Reject("invalid-field", f"ts={ts!r}") from None
    return as_int(ts, "ts") * NS
