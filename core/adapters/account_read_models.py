"""Every keyed read model of `account.events` as one projection, `accounts`
(`kernel.projection_group`): the `accounts`, `trading_orders`, `trading_fills`,
`trading_positions`, `account_equity` and `rule_status` tables, on one consumer, one decode
and one write per batch. Each table's fold is its own module's; the group only runs them together
(docs/decisions/0012-projection-groups.md). The account history (snapshots for time travel)
keeps its own process: it is no keyed table, and it is not on the path of an order."""

from __future__ import annotations

from typing import Any

from core.adapters.account_equity_projection import AccountEquityProjection
from core.adapters.accounts_projection import AccountsProjection
from core.adapters.rule_status_projection import RuleStatusProjection
from core.adapters.trading_fills_projection import TradingFillsProjection
from core.adapters.trading_orders_projection import TradingOrdersProjection
from core.adapters.trading_positions_projection import TradingPositionsProjection
from kernel.projection_group import ProjectionGroup


class AccountReadModels(ProjectionGroup):
    def __init__(self) -> None:
        # KeyedProjection declares its name and tables on the class (mypy's protocol check
        # wants instance variables); they are read the same way.
        members: list[Any] = [AccountsProjection(), TradingOrdersProjection(),
                              TradingFillsProjection(), TradingPositionsProjection(),
                              AccountEquityProjection(), RuleStatusProjection()]
        super().__init__("accounts", members)


__all__ = ["AccountReadModels"]
