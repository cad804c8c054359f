"""The defaults `propstream seed` creates: instruments (crypto, FX, index, prediction markets)
and the tier catalogue."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from schemas.instrument import InstrumentSpec, TradingHours, TradingSession
from schemas.tier import RuleSet, TierPhase, TierTerms

_FX_HOURS = TradingHours(timezone="America/New_York", sessions=(
    TradingSession(days=(6,), open="17:00", close="23:59"),
    TradingSession(days=(0, 1, 2, 3), open="00:00", close="23:59"),
    TradingSession(days=(4,), open="00:00", close="17:00"),
))
_US_INDEX_HOURS = TradingHours(timezone="America/New_York", sessions=(
    TradingSession(days=(0, 1, 2, 3, 4), open="09:30", close="16:00"),
))


def _spec(symbol: str, asset_class: str, tick: str, lot: str, quote: str, desc: str,
          hours: TradingHours | None = None, venue: str = "simulator") -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol, venue=venue, asset_class=asset_class,
                          tick_size=Decimal(tick), lot_size=Decimal(lot), quote_currency=quote,
                          trading_hours=hours or TradingHours(), description=desc)


DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spec("BTC-USD", "crypto", "0.01", "0.0001", "USD", "Bitcoin / US dollar"),
    _spec("ETH-USD", "crypto", "0.01", "0.001", "USD", "Ether / US dollar"),
    _spec("SOL-USD", "crypto", "0.001", "0.01", "USD", "Solana / US dollar"),
    _spec("EUR-USD", "fx", "0.00001", "1000", "USD", "Euro / US dollar", _FX_HOURS),
    _spec("GBP-USD", "fx", "0.00001", "1000", "USD", "Pound sterling / US dollar", _FX_HOURS),
    _spec("USD-JPY", "fx", "0.001", "1000", "JPY", "US dollar / Japanese yen", _FX_HOURS),
    _spec("US500", "index", "0.25", "1", "USD", "US 500 index CFD", _US_INDEX_HOURS),
    _spec("NAS100", "index", "0.25", "1", "USD", "US tech 100 index CFD", _US_INDEX_HOURS),
    _spec("PM-FED-CUT-DEC", "prediction", "0.01", "1", "USD",
          "Will the Fed cut rates at the December meeting? (YES share, 0-1 USD)"),
    _spec("PM-BTC-100K", "prediction", "0.01", "1", "USD",
          "Will BTC trade above 100k USD by year end? (YES share, 0-1 USD)"),
)


# Tiers ----------------------------------------------------------------------------------------
# Rules of the common prop-firm shape: a 5 % daily loss from the day's starting balance, a 10 %
# maximum loss, 8 % then 5 % profit targets, at least 4 trading days per evaluation phase,
# leverage 1:30 as on retail FX; no instrument restriction.


def _rules(*, target: str | None, max_loss_mode: Literal["static", "trailing"] = "static",
           min_days: int = 4, consistency: str | None = None,
           risk_per_trade: str | None = None) -> RuleSet:
    return RuleSet(
        daily_loss_limit_pct=Decimal("5"), daily_loss_base="day-start-balance",
        max_loss_pct=Decimal("10"), max_loss_mode=max_loss_mode,
        profit_target_pct=None if target is None else Decimal(target),
        min_trading_days=min_days,
        consistency_limit_pct=None if consistency is None else Decimal(consistency),
        max_risk_per_trade_pct=None if risk_per_trade is None else Decimal(risk_per_trade),
        max_leverage=Decimal("30"), allowed_instruments=())


DEFAULT_TIERS: dict[str, TierTerms] = {
    "starter-10k": TierTerms(
        name="Starter 10k", account_size=10_000, price_minor=9_900, currency="USD",
        description="One challenge phase, then a funded account.",
        phases=(TierPhase(name="challenge", rules=_rules(target="8")),
                TierPhase(name="funded", rules=_rules(target=None, min_days=0)))),
    "standard-50k": TierTerms(
        name="Standard 50k", account_size=50_000, price_minor=29_900, currency="USD",
        description="Challenge and verification, then a funded account.",
        phases=(TierPhase(name="challenge", rules=_rules(target="8")),
                TierPhase(name="verification", rules=_rules(target="5")),
                TierPhase(name="funded", rules=_rules(target=None, min_days=0)))),
    "pro-100k": TierTerms(
        name="Pro 100k", account_size=100_000, price_minor=49_900, currency="USD",
        description="Trailing maximum loss, 2 % risk per trade and a 40 % consistency rule.",
        phases=tuple(
            TierPhase(name=name, rules=_rules(
                target=target, max_loss_mode="trailing", min_days=0 if target is None else 4,
                consistency="40", risk_per_trade="2"))
            for name, target in (("challenge", "8"), ("verification", "5"), ("funded", None)))),
}
