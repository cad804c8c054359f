"""The `rule_status` read model: per account, where it stands against each rule of its phase
now (value, limit, headroom in money and %, status), for `GET /assessments/{id}/rules`.

The rule state is folded from the account's own events by the engine's own code
(`core.domain.trading.state.evolve_rules`: the opening, balance, positions, marks, fills,
day starts, news and verdicts) and judged by the pure `core.domain.rules.status`; no log is
read at request time. A row keeps that small state (`state`, JSON: no orders) and the
statuses it gives (`rules`, JSON). One row per account: a keyed table of `account.events`,
in the `accounts` projection group. An event at or below the row's `version` is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from core.adapters.keyed_rows import KeyedProjection
from core.domain.rules.status import RuleStatus, status
from core.domain.trading.state import (
    TradingAccount,
    dump,
    evolve_rules,
    initial,
    load,
    rule_relevant,
)
from kernel.projection import Applied, RowTable
from schemas.account import AccountOpened

COLUMNS = ("account_id", "assessment_id", "version", "marked_at_ns", "state", "rules")

DDL = (
    """
    CREATE TABLE IF NOT EXISTS rule_status (
        account_id UUID PRIMARY KEY,
        assessment_id UUID NOT NULL,
        version BIGINT NOT NULL,
        marked_at_ns BIGINT NOT NULL,
        state JSONB NOT NULL,
        rules JSONB NOT NULL
    )
    """,
)


class Row(NamedTuple):
    account_id: str
    assessment_id: str
    version: int
    marked_at_ns: int
    state: str
    rules: str


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def statuses_json(found: Sequence[RuleStatus]) -> str:
    """The statuses as stored: numbers as decimal strings."""
    return json.dumps([{"rule": s.rule, "status": s.status, "value": _text(s.value),
                        "limit": _text(s.limit), "headroom": _text(s.headroom),
                        "headroom_pct": _text(s.headroom_pct)} for s in found])


def key(applied: Applied) -> str | None:
    return applied.envelope.aggregate_id if rule_relevant(applied.payload) else None


def fold_account(row: Row | None, events: Sequence[Applied]) -> Row | None:
    """The row after the account's events of a batch (in log order); None while the account
    has no rules (not opened yet, or opened without any)."""
    view: TradingAccount | None = None if row is None else load(json.loads(row.state))
    version = -1 if row is None else row.version
    for applied in events:
        env, event = applied.envelope, applied.payload
        if env.sequence <= version:
            continue  # folded already (a replay, a duplicate)
        if view is None:
            if not isinstance(event, AccountOpened):
                continue
            view = initial(env.aggregate_id)
        evolve_rules(view, event, sequence=env.sequence)
        version = env.sequence
    if view is None or view.rule is None or view.rules is None or view.assessment_id is None:
        return row
    if row is not None and version == row.version:
        return row
    return Row(view.account_id, view.assessment_id, version, view.marked_at_ns,
               json.dumps(dump(view)), statuses_json(status(view.rules, view.rule)))


def fold(row: Row | None, applied: Applied) -> Row | None:
    """One event (`KeyedProjection.step`)."""
    return fold_account(row, [applied])


TABLE = RowTable("rule_status", COLUMNS, Row, key_type="uuid",
                 as_text=frozenset({"state", "rules"}))


class RuleStatusProjection(KeyedProjection):
    name = "rule-status"
    table = TABLE
    tables = ("rule_status",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)

    def _fold(self, rows: Mapping[str, Any], events: Sequence[Applied]) -> dict[str, Any]:
        # A batch's events per account, folded on one decoded state (not one per event).
        by_account: dict[str, list[Applied]] = {}
        for applied in events:
            by_account.setdefault(applied.envelope.aggregate_id, []).append(applied)
        out: dict[str, Any] = {}
        for account_id, mine in by_account.items():
            before = rows.get(account_id)
            after = fold_account(before, mine)
            if after is not None and after is not before:
                out[account_id] = after
        return out


__all__ = ["COLUMNS", "DDL", "TABLE", "Row", "RuleStatusProjection", "fold", "fold_account",
           "key", "statuses_json"]
