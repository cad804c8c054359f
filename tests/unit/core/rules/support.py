"""Given/when/then for the rule evaluator: an account's inputs written as a story."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from core.domain.rules import (
    DayRolled,
    Filled,
    Marked,
    NewsFlagged,
    OrderIntent,
    RuleState,
    Verdict,
    initial,
    step,
    trading_day,
)
from schemas.tier import RuleSet

D = Decimal
START = D(100_000)
ZERO = D(0)


def ns(text: str) -> int:
    """An RFC 3339 instant as ns since the epoch."""
    at = datetime.fromisoformat(text)
    assert at.tzinfo is not None
    return int(at.astimezone(UTC).timestamp()) * 1_000_000_000


def rules(**changes: object) -> RuleSet:
    base: dict[str, object] = {"daily_loss_limit_pct": D(5), "max_loss_pct": D(10)}
    return RuleSet.model_validate({**base, **changes})


@dataclass
class Account:
    """One account in one phase; each call feeds one input and keeps its verdicts."""

    spec: RuleSet
    opened: str = "2026-01-05T08:00:00+00:00"  # a Monday
    balance: Decimal = START
    equity: Decimal = START
    lots: Decimal = ZERO
    exposure: Decimal = ZERO
    held: frozenset[str] = frozenset()
    seq: int = 0
    state: RuleState = field(init=False)
    log: list[Verdict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = initial("acc-1", balance=self.balance, started_ns=ns(self.opened),
                             rules=self.spec)

    def _feed(self, event: Filled | Marked | DayRolled | NewsFlagged) -> tuple[Verdict, ...]:
        self.state, verdicts = step(self.spec, self.state, event)
        self.log += verdicts
        return verdicts

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def fill(self, at: str, *, balance: Decimal | int | None = None,
             equity: Decimal | int | None = None, lots: Decimal | int | None = None,
             exposure: Decimal | int | None = None,
             held: frozenset[str] | None = None) -> tuple[Verdict, ...]:
        self._set(balance, equity, lots, exposure, held)
        return self._feed(Filled(self._next(), ns(at), self.balance, self.equity, self.lots,
                                 self.exposure, self.held))

    def mark(self, at: str, equity: Decimal | int,
             balance: Decimal | int | None = None) -> tuple[Verdict, ...]:
        self._set(balance, equity, None, None, None)
        return self._feed(Marked(self._next(), ns(at), self.balance, self.equity, self.lots,
                                 self.exposure, self.held))

    def roll(self, at: str) -> tuple[Verdict, ...]:
        at_ns = ns(at)
        return self._feed(DayRolled(self._next(), at_ns, trading_day(at_ns, self.spec)))

    def roll_to(self, day: date, at: str) -> tuple[Verdict, ...]:
        return self._feed(DayRolled(self._next(), ns(at), day))

    def news(self, at: str, instrument: str) -> tuple[Verdict, ...]:
        return self._feed(NewsFlagged(self._next(), ns(at), instrument))

    def order(self, at: str, *, quantity: Decimal | int, entry: Decimal | int,
              stop: Decimal | int | None, lots_after: Decimal | int | None = None,
              exposure_after: Decimal | int | None = None) -> tuple[Verdict, ...]:
        intent = OrderIntent(
            at_ns=ns(at), instrument="BTC-USD", quantity=D(quantity), entry=D(entry),
            stop=None if stop is None else D(stop),
            lots_after=D(lots_after) if lots_after is not None else self.lots + D(quantity),
            exposure_after=(D(exposure_after) if exposure_after is not None
                            else self.exposure + D(quantity) * D(entry)))
        self.state, verdicts = step(self.spec, self.state, intent)
        return verdicts

    def _set(self, balance: Decimal | int | None, equity: Decimal | int | None,
             lots: Decimal | int | None, exposure: Decimal | int | None,
             held: frozenset[str] | None) -> None:
        if balance is not None:
            self.balance = D(balance)
            if equity is None:
                self.equity = D(balance)
        if equity is not None:
            self.equity = D(equity)
        if lots is not None:
            self.lots = D(lots)
            if held is None:
                self.held = frozenset({"BTC-USD"}) if self.lots else frozenset()
        if exposure is not None:
            self.exposure = D(exposure)
        if held is not None:
            self.held = held


def brief(verdicts: tuple[Verdict, ...] | list[Verdict]) -> list[tuple[str, str, int]]:
    """(kind, rule, at_ns) of each verdict: what a scenario asserts first."""
    return [(v.kind, v.rule, v.at_ns) for v in verdicts]
