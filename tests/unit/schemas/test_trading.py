"""The trading commands refuse bad numbers and shapes themselves, before any domain code."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.trading import (
    ModifyOrder,
    PlaceOrder,
    child_order_id,
    fill_id_for,
    order_id_for,
)

GOOD: dict[str, Any] = {"client_order_id": "abc.1_2-3", "instrument": "BTC-USD", "side": "buy",
                        "type": "limit", "quantity": "1.5", "limit_price": "60000.5"}


def test_a_good_limit_order_is_taken_with_decimals() -> None:
    cmd = PlaceOrder.model_validate(GOOD)
    assert cmd.quantity == Decimal("1.5") and cmd.time_in_force == "GTC"


@pytest.mark.parametrize("value", ["0", "-1", "NaN", "Infinity", "-Infinity", "1e30",
                                   "0.0000000000001", 1e300, float("nan"), "", "abc"])
@pytest.mark.parametrize("field", ["quantity", "limit_price"])
def test_bad_quantities_and_prices_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        PlaceOrder.model_validate({**GOOD, field: value})


@pytest.mark.parametrize("field", ["stop_loss", "take_profit"])
@pytest.mark.parametrize("value", ["0", "-5", "NaN", "1e40"])
def test_bad_bracket_prices_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        PlaceOrder.model_validate({**GOOD, field: value})


@pytest.mark.parametrize("client_order_id", ["", "a" * 65, "has space", "semi;colon", "ü",
                                             "line\n"])
def test_bad_client_order_ids_are_refused(client_order_id: str) -> None:
    with pytest.raises(ValidationError):
        PlaceOrder.model_validate({**GOOD, "client_order_id": client_order_id})


@pytest.mark.parametrize("fields", [
    {"type": "limit", "limit_price": None},
    {"type": "market", "limit_price": "1"},
    {"type": "stop", "limit_price": None},
    {"type": "stop-limit", "stop_price": None},
    {"type": "stop-limit", "limit_price": None, "stop_price": "1"},
    {"time_in_force": "GTD"},
    {"side": "short"},
    {"type": "trailing-stop"},
    {"extra": 1},
])
def test_inconsistent_orders_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PlaceOrder.model_validate({**GOOD, **fields})


def test_a_modify_that_changes_nothing_is_refused() -> None:
    with pytest.raises(ValidationError):
        ModifyOrder(order_id=uuid.UUID(int=1))


def test_ids_are_deterministic_and_distinct() -> None:
    order_id = order_id_for("acc", "c-1")
    assert order_id == order_id_for("acc", "c-1")
    assert order_id != order_id_for("acc", "c-2") != order_id_for("other", "c-1")
    assert fill_id_for(order_id, 1) != fill_id_for(order_id, 2)
    assert child_order_id(order_id, "stop-loss") != child_order_id(order_id, "take-profit")
