"""Polymarket CLOB market channel to ticks.

Followed: Polymarket docs "Market Channel" (docs.polymarket.com, market-data/websocket,
2025 revision with the `price_changes` array) and its AsyncAPI description. Fields used:

* subscribe: {"assets_ids": [...], "type": "market"}; keepalive: text "PING", reply "PONG"
* every event: `event_type`, `market` (condition id), `timestamp` (ms, as a string)
* `book`: asset_id, bids/asks [{price, size}], hash
* `price_change`: price_changes [{asset_id, price, size, side, hash, best_bid, best_ask}]
* `last_trade_price`: asset_id, price, size, side (BUY/SELL), fee_rate_bps, and, where sent,
  transaction_hash
* `tick_size_change` and `best_bid_ask`: validated; `best_bid_ask` becomes a quote
* `market_resolved` (sent with `custom_feature_enabled`): assets_ids, winning_asset_id,
  timestamp; `new_market` (sent with it too): ignored
* a frame may be one event or a JSON array of events (the initial book dump)

Mapping: prices are probabilities in (0, 1]. `book` and `price_change` give book tops
(quote ticks); `last_trade_price` gives a trade tick whose side is the message's side. The
channel carries no trade id, so the id is `transaction_hash` when present and otherwise
`<timestamp>:<price>:<size>:<side>`, stable across a resend of the same print. Entries of a
`price_change` for assets we did not map (the other outcome of a market) are skipped; a
frame with no mapped asset at all is `unknown-symbol`.

A `market_resolved` gives each mapped asset of the market a `Resolution`: 1 for the winning
asset, 0 for the others (a YES and a NO instrument of one market end opposite ways). It is a
fact whatever its age, so the time guard does not apply to it (one replayed after a
reconnect still counts; core resolves an instrument once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
    ms_to_ns,
    price,
    quote_tick,
    require,
    size,
    trade_tick,
)

VENUE = "polymarket"
EVENTS = frozenset({"book", "price_change", "last_trade_price", "tick_size_change",
                    "best_bid_ask", "market_resolved", "new_market"})


class PolymarketFeed:
    """Pure Polymarket market-channel knowledge for the reconnecting client."""

    venue = VENUE

    def __init__(self, assets: Mapping[str, str], *, guard: TimeGuard | None = None) -> None:
        self._assets = dict(assets)
        self._guard = guard or TimeGuard()

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"assets_ids": list(self._assets), "type": "market",
                            "custom_feature_enabled": True})]

    def resync_messages(self, gap: GapDetected) -> list[str]:
        return []  # no sequence numbers on this channel; `book` events re-anchor the state

    def heartbeat_message(self) -> str | None:
        return "PING"

    def reset(self) -> None:
        return None

    def parse(self, raw: bytes | str, received_ts_ns: int) -> ParseResult:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if text.strip() in ("PONG", "PING"):
            return []
        try:
            frame = load_json(raw)
            events = frame if isinstance(frame, list) else [frame]
            out: list[Tick | Resolution] = []
            for event in events:
                out.extend(self._event(event, received_ts_ns))
            return out
        except Reject as rejected:
            return rejected.error

    def _event(self, event: Any, received_ts_ns: int) -> list[Tick] | list[Resolution]:
        if not isinstance(event, dict):
            raise Reject("not-an-object", type(event).__name__)
        kind = as_str(require(event, "event_type"), "event_type")
        if kind not in EVENTS:
            raise Reject("unknown-event", kind)
        if kind == "new_market":
            return []  # market metadata: the registry is core's
        venue_ts_ns = ms_to_ns(as_int(require(event, "timestamp"), "timestamp"))
        if kind == "market_resolved":
            return self._resolved(event, venue_ts_ns)
        self._guard.check(venue_ts_ns, received_ts_ns)
        if kind == "book":
            return self._book(event, venue_ts_ns, received_ts_ns)
        if kind == "price_change":
            return self._price_change(event, venue_ts_ns, received_ts_ns)
        if kind == "last_trade_price":
            return [self._trade(event, venue_ts_ns, received_ts_ns)]
        instrument = self._instrument(require(event, "asset_id"))
        if kind == "best_bid_ask":
            bid = price(require(event, "best_bid"), "best_bid", upper=1.0)
            ask = price(require(event, "best_ask"), "best_ask", upper=1.0)
            return [quote_tick(instrument=instrument, venue=VENUE, bid=bid, ask=ask,
                               venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns)]
        price(require(event, "new_tick_size"), "new_tick_size", upper=1.0)
        return []

    def _resolved(self, event: dict[str, Any], venue_ts_ns: int) -> list[Resolution]:
        winner = as_str(require(event, "winning_asset_id"), "winning_asset_id")
        assets = require(event, "assets_ids")
        if not isinstance(assets, list) or not assets:
            raise Reject("invalid-field", "assets_ids is not a non-empty list")
        if winner not in assets:
            raise Reject("invalid-field", f"winning_asset_id {winner} is not among assets_ids")
        out = []
        for asset in assets:
            instrument = self._assets.get(as_str(asset, "assets_ids"))
            if instrument is not None:
                out.append(Resolution(instrument=instrument, outcome=1 if asset == winner else 0,
                                      venue=VENUE, venue_ts_ns=venue_ts_ns))
        if not out:
            raise Reject("unknown-symbol", ",".join(str(a) for a in assets))
        return out

    def _instrument(self, asset_id: Any) -> str:
        asset = as_str(asset_id, "asset_id")
        instrument = self._assets.get(asset)
        if instrument is None:
            raise Reject("unknown-symbol", asset)
        return instrument

    def _book(self, event: dict[str, Any], venue_ts_ns: int, received_ts_ns: int) -> list[Tick]:
        instrument = self._instrument(require(event, "asset_id"))
        bids = self._levels(require(event, "bids"), "bids")
        asks = self._levels(require(event, "asks"), "asks")
        if not bids or not asks:
            return []
        return [quote_tick(instrument=instrument, venue=VENUE, bid=max(bids), ask=min(asks),
                           venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns)]

    @staticmethod
    def _levels(levels: Any, field: str) -> list[float]:
        if not isinstance(levels, list):
            raise Reject("invalid-field", f"{field} is not a list")
        prices = []
        for level in levels:
            level_price = price(require(level, "price"), f"{field}.price", upper=1.0)
            if size(require(level, "size"), f"{field}.size", allow_zero=True) > 0.0:
                prices.append(level_price)
        return prices

    def _price_change(
        self, event: dict[str, Any], venue_ts_ns: int, received_ts_ns: int
    ) -> list[Tick]:
        changes = require(event, "price_changes")
        if not isinstance(changes, list) or not changes:
            raise Reject("invalid-field", "price_changes is not a non-empty list")
        ticks: list[Tick] = []
        unknown: list[str] = []
        for change in changes:
            asset = as_str(require(change, "asset_id"), "asset_id")
            price(require(change, "price"), "price", upper=1.0)
            size(require(change, "size"), "size", allow_zero=True)
            as_str(require(change, "side"), "side")
            instrument = self._assets.get(asset)
            if instrument is None:
                unknown.append(asset)
                continue
            bid, ask = change.get("best_bid"), change.get("best_ask")
            if bid in (None, "", "0") or ask in (None, "", "0"):
                continue  # one side of the book is empty: no mid
            ticks.append(quote_tick(
                instrument=instrument, venue=VENUE,
                bid=price(bid, "best_bid", upper=1.0), ask=price(ask, "best_ask", upper=1.0),
                venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns,
            ))
        if len(unknown) == len(changes):
            raise Reject("unknown-symbol", ",".join(unknown))
        return ticks

    def _trade(self, event: dict[str, Any], venue_ts_ns: int, received_ts_ns: int) -> Tick:
        instrument = self._instrument(require(event, "asset_id"))
        raw_price, raw_size = require(event, "price"), require(event, "size")
        trade_price = price(raw_price, "price", upper=1.0)
        quantity = size(raw_size, "size")
        side = as_str(require(event, "side"), "side").upper()
        if side not in ("BUY", "SELL"):
            raise Reject("invalid-field", f"side={side}")
        tx = event.get("transaction_hash")
        trade_id = (tx if isinstance(tx, str) and tx
                    else f"{event['timestamp']}:{raw_price}:{raw_size}:{side}")
        return trade_tick(
            instrument=instrument, venue=VENUE, price=trade_price, size=quantity,
            side="buy" if side == "BUY" else "sell", trade_id=trade_id,
            venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns,
        )
