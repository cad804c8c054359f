"""What the account engine passes into a trading step: the quote, the market, the terms.

All Decimal. The engine converts a tick's floats here, at the edge (`quote_from_tick`), and
builds a `Market` per instrument from the registry's spec and status, and `Terms` from the
tier's rule set; the step functions read nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.instrument import Execution, InstrumentSpec, InstrumentStatus, TradingHours
from schemas.market import TickRow
from schemas.tier import RuleSet

Contract = Literal["linear", "binary"]
ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Quote:
    """The touch of one instrument; sizes of None mean the depth is not known (unlimited)."""

    instrument: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal | None
    ask_size: Decimal | None
    at_ns: int

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    """The facts about one instrument a trading step needs."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    trading_hours: TradingHours = field(default_factory=TradingHours)
    status: InstrumentStatus = "active"
    contract: Contract = "linear"
    commission_per_unit: Decimal = ZERO
    commission_rate: Decimal = ZERO
    slippage_ticks: int = 0
    max_quote_age_ns: int = 5_000_000_000
    # "book": orders are accepted here and matched in the instrument's order book
    # (core/processors/book_engine.py); their fills come back from it (`trading.booked`).
    execution: Execution = "market"

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError("tick and lot sizes are above zero")
        if self.commission_per_unit < 0 or self.commission_rate < 0 or self.slippage_ticks < 0:
            raise ValueError("commission and slippage are zero or above")
        if self.contract == "binary" and self.tick_size >= 1:
            raise ValueError("a binary contract's tick is below 1")


def market_from_spec(spec: InstrumentSpec, *, status: InstrumentStatus = "active",
                     commission_per_unit: Decimal = ZERO, commission_rate: Decimal = ZERO,
                     slippage_ticks: int = 0,
                     max_quote_age_ns: int = 5_000_000_000) -> Market:
    """Return the market of a registered instrument; prediction instruments are binary."""
    return Market(symbol=spec.symbol, tick_size=spec.tick_size, lot_size=spec.lot_size,
                  trading_hours=spec.trading_hours, status=status,
                  contract="binary" if spec.asset_class == "prediction" else "linear",
                  commission_per_unit=commission_per_unit, commission_rate=commission_rate,
                  slippage_ticks=slippage_ticks, max_quote_age_ns=max_quote_age_ns,
                  execution=spec.execution)


@dataclass(frozen=True, slots=True, kw_only=True)
class Terms:
    """The limits a tier (and a role) put on an account's orders."""

    allowed_instruments: frozenset[str] = frozenset()  # empty: every instrument
    max_leverage: Decimal = ONE
    max_risk_per_trade_pct: Decimal | None = None
    max_order_quantity: Mapping[str, Decimal] = field(default_factory=dict)
    # Seed 003's role constraint: the largest position (either side) per instrument.
    max_position: Mapping[str, Decimal] = field(default_factory=dict)

    def allows(self, symbol: str) -> bool:
        return not self.allowed_instruments or symbol in self.allowed_instruments


def terms_from_rules(rules: RuleSet, *, max_order_quantity: Mapping[str, Decimal] | None = None,
                     max_position: Mapping[str, Decimal] | None = None) -> Terms:
    """Return the order limits of a phase's rule set."""
    return Terms(allowed_instruments=frozenset(rules.allowed_instruments),
                 max_leverage=rules.max_leverage,
                 max_risk_per_trade_pct=rules.max_risk_per_trade_pct,
                 max_order_quantity=dict(max_order_quantity or {}),
                 max_position=dict(max_position or {}))


def on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step`."""
    return value % step == 0


def _decimal(value: float) -> Decimal:
    # repr is the shortest text that reads back as the same float: 0.1 stays 0.1.
    return Decimal(repr(value))


def quote_from_tick(row: TickRow, market: Market, *, instrument: str | None = None
                    ) -> Quote | None:
    """Return the tick's touch on the tick grid, or None if it is not a usable quote.

    A missing bid or ask is the trade price. The bid is rounded down and the ask up to the
    grid (never better for the trader than the venue said). The tick's size, when above
    zero, is the depth on both sides (the only size a tick carries); zero means unknown.
    Refused: a non-positive or crossed quote, and for a binary contract one outside (0, 1).
    """
    bid = _decimal(row.bid if row.bid is not None else row.price)
    ask = _decimal(row.ask if row.ask is not None else row.price)
    tick = market.tick_size
    bid = (bid / tick).to_integral_value(ROUND_FLOOR) * tick
    ask = (ask / tick).to_integral_value(ROUND_CEILING) * tick
    if bid <= 0 or ask <= 0 or bid > ask:
        return None
    if market.contract == "binary" and ask >= 1:
        return None
    size = None
    if row.size > 0:
        size = (_decimal(row.size) / market.lot_size).to_integral_value(ROUND_FLOOR) * \
            market.lot_size
        if size <= 0:
            size = None
    return Quote(instrument=instrument or market.symbol, bid=bid, ask=ask, bid_size=size,
                 ask_size=size, at_ns=row.venue_ts_ns)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_trading(hours: TradingHours, now_ns: int) -> bool:
    """Whether `now_ns` falls inside one of the weekly sessions (none: around the clock)."""
    if not hours.sessions:
        return True
    local = datetime.fromtimestamp(now_ns / 1e9, UTC).astimezone(_zone(hours.timezone))
    day, now = local.weekday(), local.time().replace(tzinfo=None)
    yesterday = (day - 1) % 7
    for session in hours.sessions:
        if session.open < session.close:
            if day in session.days and session.open <= now < session.close:
                return True
        elif (day in session.days and now >= session.open) or \
                (yesterday in session.days and now < session.close):
            return True  # the session wraps midnight into the next day
    return False


def utc_day(ns: int) -> int:
    """The UTC calendar day number of a time in ns: DAY orders live until it changes."""
    return ns // (86_400 * 1_000_000_000)


__all__ = ["Contract", "Market", "Quote", "Terms", "is_trading", "market_from_spec", "on_grid",
           "quote_from_tick", "terms_from_rules", "utc_day"]
