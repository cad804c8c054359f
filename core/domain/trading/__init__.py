"""Trading on a virtual account, pure: orders, fills against quotes, positions, P&L, margin.

The account engine (the process around this package) is the single writer of an account: it
passes in the quote, the market and the tier's terms, records the events a step returns, and
folds them with `evolve`. No IO, no clock, no random ids here: times come in as `now_ns`,
ids derive from the account id and the client order id (`schemas.trading`).
"""

from __future__ import annotations

from core.domain.trading.account import expire_day, halt, mark, mark_price, on_quote, resume, settle
from core.domain.trading.market import (
    Contract,
    Market,
    Quote,
    Terms,
    is_trading,
    market_from_spec,
    quote_from_tick,
    terms_from_rules,
)
from core.domain.trading.orders import cancel, modify, place
from core.domain.trading.positions import Position, apply_fill
from core.domain.trading.state import (
    TradingAccount,
    Working,
    clone,
    dump,
    evolve,
    initial,
    load,
)

__all__ = [
    "Contract", "Market", "Position", "Quote", "Terms", "TradingAccount", "Working",
    "apply_fill", "cancel", "clone", "dump", "evolve", "expire_day", "halt", "initial",
    "is_trading", "load", "mark", "mark_price", "market_from_spec", "modify", "on_quote",
    "place", "quote_from_tick", "resume", "settle", "terms_from_rules",
]
