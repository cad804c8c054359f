"""A simulated market maker: quotes both sides of a book around a reference price.

Pure and deterministic: the owner id, the seed and the reference prices passed in fully
decide the commands it returns; it generates its order ids from its owner and a counter.
It does not read the book's results: a re-quote cancels every order of its last quote, and
a cancel of one that has since filled is refused by the book as "not-resting", harmlessly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from core.domain.book_types import Cancel, Command, Place, TimeInForce


class MarketMaker:
    """Quote `levels` price levels a side, one tick apart, under one owner id."""

    def __init__(self, owner: str, *, seed: int, levels: int = 1, post_only: bool = True,
                 placed: int = 0, live: Sequence[str] = ()) -> None:
        """`placed` and `live` resume a maker that already quoted (its order count and its
        last quote's ids): how the book engine rebuilds one from the log."""
        if levels < 1:
            raise ValueError("a market maker quotes at least one level a side")
        self.owner = owner
        self.levels = levels
        self._tif: TimeInForce = "post-only" if post_only else "gtc"
        self._rng = random.Random(seed)
        self._count = placed
        self._live: list[str] = list(live)  # the ids of the last quote

    @property
    def placed(self) -> int:
        """How many orders it has placed so far (its next id is `<owner>:<placed + 1>`)."""
        return self._count

    @property
    def live(self) -> tuple[str, ...]:
        """The ids of its last quote."""
        return tuple(self._live)

    def quote(self, reference: int, *, spread: int, size: int) -> list[Command]:
        """Cancel the last quote and quote anew: best bid `reference - spread // 2`, best
        ask `spread` ticks above it, each level `size` lots give or take half (seeded)."""
        if spread < 1 or size < 1:
            raise ValueError(f"spread {spread} and size {size} must be >= 1 (ticks, lots)")
        commands: list[Command] = [Cancel(order_id) for order_id in self._live]
        self._live = []
        bid = reference - spread // 2
        low, high = max(1, size - size // 2), size + size // 2
        for level in range(self.levels):
            for side, price in (("buy", bid - level), ("sell", bid + spread + level)):
                if price < 1:
                    continue
                self._count += 1
                order_id = f"{self.owner}:{self._count}"
                self._live.append(order_id)
                commands.append(Place(order_id, self.owner, "buy" if side == "buy" else "sell",
                                      self._rng.randint(low, high), price, self._tif))
        return commands

    def withdraw(self) -> list[Command]:
        """Cancel the last quote."""
        commands: list[Command] = [Cancel(order_id) for order_id in self._live]
        self._live = []
        return commands
