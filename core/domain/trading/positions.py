"""Netting per instrument: cost basis, realized and unrealized P&L, margin.

A position keeps its signed quantity and its signed *cost basis* (the sum of price x signed
quantity still open), not an average price: the average is cost / quantity, which Decimal
cannot always hold exactly, while the cost basis is exact. Every fill keeps this identity,
with no rounding anywhere it matters:

    realized booked by the fill - change of the cost basis == -(signed quantity x price)

so cash (moved by realized P&L and commissions) + the unrealized P&L at any price equals
the starting balance plus the sum over fills of -(signed quantity x price) - commissions plus
the open quantity at that price. A partial reduction removes the cost basis pro rata, rounded
to the basis's own exponent; whatever that rounding moves lands in the realized P&L of the
same fill, so the identity stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.domain.trading.market import ONE, ZERO, Contract

DISPLAY = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class Position:
    instrument: str
    quantity: Decimal = ZERO  # signed: long above zero
    cost: Decimal = ZERO  # signed cost basis of the open quantity
    realized: Decimal = ZERO  # since the position opened
    commissions: Decimal = ZERO  # since the position opened

    @property
    def average_price(self) -> Decimal:
        """Cost / quantity, rounded to 12 places for display (zero when flat)."""
        if not self.quantity:
            return ZERO
        return abs(self.cost / self.quantity).quantize(DISPLAY)

    def unrealized(self, price: Decimal) -> Decimal:
        """The P&L of the open quantity if it were closed at `price`."""
        return self.quantity * price - self.cost


def apply_fill(position: Position, signed_quantity: Decimal, price: Decimal,
               commission: Decimal) -> tuple[Position, Decimal]:
    """Return the position after a fill and the P&L the fill realized (before commission)."""
    q0, c0 = position.quantity, position.cost
    dq = signed_quantity
    commissions = position.commissions + commission
    if not q0 or (q0 > 0) == (dq > 0):  # opening or increasing
        return Position(position.instrument, q0 + dq, c0 + dq * price, position.realized,
                        commissions), ZERO
    if abs(dq) <= abs(q0):  # reducing or closing
        if abs(dq) == abs(q0):
            removed = c0
        else:
            removed = (c0 * abs(dq) / abs(q0)).quantize(Decimal(1).scaleb(_exponent(c0)))
        realized = -dq * price - removed
        return Position(position.instrument, q0 + dq, c0 - removed,
                        position.realized + realized, commissions), realized
    # Through zero: close the whole position at the fill price, open the rest there.
    realized = q0 * price - c0
    rest = q0 + dq
    return Position(position.instrument, rest, rest * price, position.realized + realized,
                    commissions), realized


def settle(position: Position, outcome: Decimal) -> tuple[Position, Decimal]:
    """Close a binary position at its outcome (0 or 1 per unit): no commission."""
    realized = position.quantity * outcome - position.cost
    return Position(position.instrument, ZERO, ZERO, position.realized + realized,
                    position.commissions), realized


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def margin(position_quantity: Decimal, cost: Decimal, price: Decimal, *, contract: Contract,
           leverage: Decimal) -> Decimal:
    """The margin a position of `position_quantity` holds at `price`.

    Linear: notional at the price / leverage. Binary: no leverage; a buyer puts up the whole
    premium paid (its cost), a seller the most it can lose, 1 - price per unit it sold at.
    """
    if not position_quantity:
        return ZERO
    if contract == "binary":
        if position_quantity > 0:
            return cost
        return -position_quantity - (-cost)  # |q| x 1 - premium received
    return abs(position_quantity) * price / leverage


def worst_case_margin(quantity: Decimal, price: Decimal, *, contract: Contract,
                      leverage: Decimal) -> Decimal:
    """Margin of a position of signed `quantity` opened at `price` (for a pre-trade check)."""
    if contract == "binary":
        return quantity * price if quantity > 0 else -quantity * (ONE - price)
    return abs(quantity) * price / leverage
