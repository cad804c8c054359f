"""Validation of the instrument wire models."""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentSpec,
    TradingHours,
    TradingSession,
)


def _spec(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "symbol": "BTC-USD",
        "venue": "sim",
        "asset_class": "crypto",
        "tick_size": "0.01",
        "lot_size": "0.001",
        "quote_currency": "USD",
    }
    fields.update(overrides)
    return fields


def test_spec_when_symbol_has_a_trailing_newline_is_rejected() -> None:
    with pytest.raises(ValidationError, match="symbol"):
        InstrumentSpec.model_validate(_spec(symbol="BTC\n"))


@pytest.mark.parametrize(
    "symbol",
    ["", "btc-usd", "-BTC", ".BTC", "BTC USD", "BTC\tUSD", "A" * 41, "BTC€", "\nBTC"],
)
def test_spec_when_symbol_is_bad_is_rejected(symbol: str) -> None:
    with pytest.raises(ValidationError, match="symbol"):
        InstrumentSpec.model_validate(_spec(symbol=symbol))


@pytest.mark.parametrize("symbol", ["BTC-USD", "A", "ES:2025-03", "EUR/USD", "X_1.2", "A" * 40])
def test_spec_when_symbol_is_good_is_accepted(symbol: str) -> None:
    assert InstrumentSpec.model_validate(_spec(symbol=symbol)).symbol == symbol


@pytest.mark.parametrize("field", ["tick_size", "lot_size"])
@pytest.mark.parametrize("value", ["0", "-0.01", "-1", "NaN", "Infinity"])
def test_spec_when_size_is_not_positive_and_finite_is_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        InstrumentSpec.model_validate(_spec(**{field: value}))


def test_spec_when_tick_size_has_too_many_decimal_places_is_rejected() -> None:
    with pytest.raises(ValidationError, match="tick_size"):
        InstrumentSpec.model_validate(_spec(tick_size="0.0000000000001"))


@pytest.mark.parametrize("currency", ["usd", "Usd", "US", "USDTXX", "US1", "USD\n"])
def test_spec_when_quote_currency_is_bad_is_rejected(currency: str) -> None:
    with pytest.raises(ValidationError, match="quote_currency"):
        InstrumentSpec.model_validate(_spec(quote_currency=currency))


@pytest.mark.parametrize("venue", ["", "Binance", "-sim", "sim venue", "a" * 33])
def test_spec_when_venue_is_bad_is_rejected(venue: str) -> None:
    with pytest.raises(ValidationError, match="venue"):
        InstrumentSpec.model_validate(_spec(venue=venue))


def test_spec_when_field_is_unknown_is_rejected() -> None:
    with pytest.raises(ValidationError, match="leverage"):
        InstrumentSpec.model_validate(_spec(leverage=100))


def test_spec_defaults_to_trading_around_the_clock_in_utc() -> None:
    spec = InstrumentSpec.model_validate(_spec())

    assert spec.trading_hours == TradingHours(timezone="UTC", sessions=())
    assert spec.tick_size == Decimal("0.01")


def test_session_when_no_days_is_rejected() -> None:
    with pytest.raises(ValidationError, match="days"):
        TradingSession(days=(), open=time(9), close=time(17))


def test_session_when_day_is_out_of_range_is_rejected() -> None:
    with pytest.raises(ValidationError, match="days"):
        TradingSession(days=(7,), open=time(9), close=time(17))


def test_changes_when_empty_are_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one attribute"):
        InstrumentChanges()


def test_changes_when_only_nones_are_given_are_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one attribute"):
        InstrumentChanges(venue=None, description=None)


def test_changes_when_one_attribute_is_given_are_accepted() -> None:
    changes = InstrumentChanges(tick_size=Decimal("0.5"))

    assert changes.model_fields_set == {"tick_size"}


def test_changes_when_tick_size_is_zero_are_rejected() -> None:
    with pytest.raises(ValidationError, match="tick_size"):
        InstrumentChanges(tick_size=Decimal(0))


def test_halt_when_reason_is_empty_is_rejected() -> None:
    with pytest.raises(ValidationError, match="reason"):
        HaltInstrument(reason="")


def test_spec_is_frozen() -> None:
    spec = InstrumentSpec.model_validate(_spec())

    with pytest.raises(ValidationError):
        spec.symbol = "ETH-USD"  # type: ignore[misc]


def test_session_times_are_served_as_the_declared_local_time_pattern() -> None:
    schema = TradingSession.model_json_schema()["properties"]["open"]
    assert "format" not in schema  # `format: time` demands an offset we never send
    served = TradingSession(days=(0,), open=time(9, 30), close="16:00").model_dump(mode="json")
    for value in (served["open"], served["close"]):
        assert re.fullmatch(schema["pattern"], value), value
    assert served["open"] == "09:30:00"


def test_a_recorded_session_with_an_offset_stays_readable_and_is_served_without_it() -> None:
    old = TradingSession.model_validate({"days": [0], "open": "09:30:00+01:00",
                                         "close": "16:00:00"})
    assert old.model_dump(mode="json")["open"] == "09:30:00"
