"""Validation of the instrument wire models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.instrument import InstrumentSpec


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
