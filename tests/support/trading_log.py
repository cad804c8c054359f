"""An account's event log as the account engine writes it, made by the real trading domain:
each step's events numbered in sequence and folded into the account's state, so the next
step sees them. For the read models' tests (unit folds and the Kafka + PostgreSQL run)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.domain.trading import (
    Market,
    Quote,
    Terms,
    TradingAccount,
    evolve,
    initial,
    mark,
    on_quote,
    place,
)
from kernel.projection import Applied
from schemas.account import AccountOpened
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.trading import PlaceOrder

D = Decimal
NS = 1_795_000_000_000_000_000  # 2026-11-18, a Wednesday, 11:06:40 UTC
T0 = datetime.fromtimestamp(NS // 1_000_000_000, UTC)
BTC = Market(symbol="BTC-USD", tick_size=D("0.5"), lot_size=D("0.001"),
             commission_rate=D("0.0005"), slippage_ticks=1)
TERMS = Terms(max_leverage=D("10"))


def quote(bid: str, ask: str, *, size: str | None = None, at_ns: int = NS) -> Quote:
    depth = None if size is None else D(size)
    return Quote("BTC-USD", D(bid), D(ask), depth, depth, at_ns)


def order(**fields: Any) -> PlaceOrder:
    values: dict[str, Any] = {"client_order_id": "c-1", "instrument": "BTC-USD", "side": "buy",
                              "type": "market", "quantity": D("1")}
    values.update(fields)
    return PlaceOrder(**values)


class AccountLog:
    """One account's events, opened with `start` for `user_id`."""

    def __init__(self, account_id: str, *, user_id: uuid.UUID | None = None,
                 start: Decimal = D("100000")) -> None:
        self.account_id = account_id
        self.state: TradingAccount = initial(account_id)
        self.events: list[Applied] = []
        self.record([AccountOpened(assessment_id=uuid.uuid4(),
                                   user_id=user_id or uuid.uuid4(),
                                   starting_balance=start, currency="USD")])

    def record(self, payloads: Iterable[EventPayload]) -> list[Applied]:
        out = []
        for payload in payloads:
            seq = len(self.events) + 1
            env = make_event(payload, aggregate_id=self.account_id, sequence=seq,
                             occurred_at=T0 + timedelta(seconds=seq),
                             correlation_id=uuid.uuid4(), causation_id=uuid.uuid4(),
                             event_id=uuid.uuid4())
            evolve(self.state, payload)
            applied = Applied(env, payload)
            self.events.append(applied)
            out.append(applied)
        return out

    def place(self, *, now_ns: int = NS, bid: str = "60000", ask: str = "60001",
              size: str | None = None, **fields: Any) -> list[Applied]:
        """Place an order against the quote `bid`/`ask` (`size` at the touch) at `now_ns`."""
        cmd = order(**fields)
        q = quote(bid, ask, size=size, at_ns=now_ns)
        return self.record(place(self.state, cmd, quote=q, market=BTC, terms=TERMS,
                                 now_ns=now_ns))

    def quote(self, bid: str, ask: str, *, size: str | None = None,
              now_ns: int = NS) -> list[Applied]:
        q = quote(bid, ask, size=size, at_ns=now_ns)
        return self.record(on_quote(self.state, q, market=BTC, now_ns=now_ns))

    def mark(self, bid: str, ask: str, *, now_ns: int) -> list[Applied]:
        marked = mark(self.state, {"BTC-USD": quote(bid, ask, at_ns=now_ns)},
                      markets={"BTC-USD": BTC}, terms=TERMS, now_ns=now_ns)
        assert marked is not None
        return self.record([marked])

    def records(self) -> list[tuple[bytes | None, bytes]]:
        """The log as Kafka records of `account.events`, keyed by the account id."""
        return [(self.account_id.encode(), encode(a.envelope)) for a in self.events]
