"""The rule-relevant state of one account in one phase, and the inputs that move it.

The account engine turns its own events into these inputs: after a fill (or a settlement)
the account's figures, after an equity mark the same figures, a scheduled day rollover, a
news event on an instrument. Each input carries the sequence of the account event it comes
from, so an input at or below the state's sequence has been folded already. An order about
to be placed (`OrderIntent`) is only checked, never folded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any

from core.domain.rules.spec import trading_day
from schemas.tier import RuleSet

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Figures:
    """The account after an event: money, and what is open (for lots, exposure, holding)."""

    sequence: int
    at_ns: int
    balance: Decimal
    equity: Decimal
    open_lots: Decimal = ZERO
    open_exposure: Decimal = ZERO  # sum of |quantity| x average entry price
    open_instruments: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Filled(Figures):
    """Figures after a fill: the day becomes a trading day."""


@dataclass(frozen=True, slots=True)
class Marked(Figures):
    """Figures after an equity mark or a balance change without a fill."""


@dataclass(frozen=True, slots=True)
class DayRolled:
    """The scheduled start of trading day `day` (see `spec.trading_day`)."""

    sequence: int
    at_ns: int
    day: date


@dataclass(frozen=True, slots=True)
class NewsFlagged:
    """A flagged news event on an instrument, as the market published it."""

    sequence: int
    at_ns: int
    instrument: str


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order about to be placed: checked against the rules, never folded.

    `lots_after` / `exposure_after` are the open lots and exposure if it filled whole.
    """

    at_ns: int
    instrument: str
    quantity: Decimal
    entry: Decimal
    stop: Decimal | None
    lots_after: Decimal
    exposure_after: Decimal


Input = Filled | Marked | DayRolled | NewsFlagged | OrderIntent
Folded = Filled | Marked | DayRolled | NewsFlagged


@dataclass(frozen=True, slots=True)
class RuleState:
    """What the rules need of an account's history, folded from its inputs and verdicts."""

    account_id: str
    initial_balance: Decimal
    started_ns: int
    start_day: date
    day: date
    sequence: int = 0  # the last input folded
    first_sequence: int = 0  # the first input folded (0: none yet)
    balance: Decimal = ZERO
    equity: Decimal = ZERO
    high_water: Decimal = ZERO
    day_start_balance: Decimal = ZERO
    day_start_equity: Decimal = ZERO
    open_lots: Decimal = ZERO
    open_exposure: Decimal = ZERO
    open_instruments: frozenset[str] = frozenset()
    trading_days: int = 0
    traded_today: bool = False
    day_pnls: tuple[tuple[date, Decimal], ...] = ()  # closed days: (day, balance change)
    warned: frozenset[str] = frozenset()  # rules warned about today
    violated: frozenset[str] = frozenset()
    passed: bool = False
    withheld_on: date | None = None  # the last day a pass was withheld (consistency)
    days: int = 0  # calendar days from the start day to the current day

    @property
    def failed(self) -> bool:
        return bool(self.violated)

    @property
    def settled(self) -> bool:
        """Passed or failed: nothing more is judged."""
        return self.passed or bool(self.violated)

    @property
    def day_pnl(self) -> Decimal:
        return self.balance - self.day_start_balance

    @property
    def best_day(self) -> Decimal:
        best = self.day_pnl if self.traded_today or self.day_pnl else ZERO
        for _, pnl in self.day_pnls:
            best = pnl if pnl > best else best
        return best


def initial(account_id: str, *, balance: Decimal, started_ns: int, rules: RuleSet) -> RuleState:
    """An account opened for a phase at `started_ns` with `balance`, flat."""
    day = trading_day(started_ns, rules)
    return RuleState(account_id=account_id, initial_balance=balance, started_ns=started_ns,
                     start_day=day, day=day, balance=balance, equity=balance,
                     high_water=balance, day_start_balance=balance, day_start_equity=balance)


def fold(state: RuleState, event: Folded) -> RuleState:
    """The state after an input; the caller has checked its sequence is new."""
    first = state.first_sequence or event.sequence
    if isinstance(event, Figures):
        traded = isinstance(event, Filled)
        new_day = traded and not state.traded_today
        return replace(
            state, sequence=event.sequence, first_sequence=first, balance=event.balance,
            equity=event.equity,
            high_water=event.equity if event.equity > state.high_water else state.high_water,
            open_lots=event.open_lots, open_exposure=event.open_exposure,
            open_instruments=event.open_instruments,
            trading_days=state.trading_days + 1 if new_day else state.trading_days,
            traded_today=state.traded_today or traded)
    if isinstance(event, DayRolled) and event.day > state.day:
        closed = ((*state.day_pnls, (state.day, state.day_pnl))
                  if state.traded_today or state.day_pnl else state.day_pnls)
        return replace(
            state, sequence=event.sequence, first_sequence=first, day=event.day,
            day_start_balance=state.balance, day_start_equity=state.equity,
            traded_today=False, day_pnls=closed, warned=frozenset(),
            days=(event.day - state.start_day).days)
    return replace(state, sequence=event.sequence, first_sequence=first)


def dump_state(state: RuleState) -> dict[str, Any]:
    """The state as JSON-ready data (for the account engine's snapshots)."""
    out: dict[str, Any] = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, frozenset):
            value = sorted(value)
        elif f.name == "day_pnls":
            value = [[d.isoformat(), str(p)] for d, p in value]
        out[f.name] = value
    return out


def load_state(data: dict[str, Any]) -> RuleState:
    """The state back from `dump_state`."""
    kw: dict[str, Any] = {}
    for f in fields(RuleState):
        value = data[f.name]
        if f.name in _DECIMALS:
            value = Decimal(value)
        elif f.name in ("start_day", "day") or (f.name == "withheld_on" and value is not None):
            value = date.fromisoformat(value)
        elif f.name in ("open_instruments", "warned", "violated"):
            value = frozenset(value)
        elif f.name == "day_pnls":
            value = tuple((date.fromisoformat(d), Decimal(p)) for d, p in value)
        kw[f.name] = value
    return RuleState(**kw)


_DECIMALS = frozenset({"initial_balance", "balance", "equity", "high_water",
                       "day_start_balance", "day_start_equity", "open_lots", "open_exposure"})


__all__ = ["DayRolled", "Figures", "Filled", "Folded", "Input", "Marked", "NewsFlagged",
           "OrderIntent", "RuleState", "dump_state", "fold", "initial", "load_state"]
