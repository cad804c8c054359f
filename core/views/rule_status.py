"""Query over the `rule_status` read model: where an account stands against each rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from core.domain.rules.status import Status, StatusRule
from schemas.tier import PhaseName

EXAMPLE_RULES_STATUS: dict[str, Any] = {
    "assessment_id": "3f0c7e1a-8f1b-5d2e-9a4c-6b7d8e9f0a1b",
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "phase": "challenge",
    "marked_at": "2026-01-02T09:30:00Z", "version": 42,
    "rules": [
        {"rule": "daily-loss", "status": "warning", "value": "1050", "limit": "1250",
         "headroom": "200", "headroom_pct": "16"},
        {"rule": "max-loss", "status": "ok", "value": "1050", "limit": "2500",
         "headroom": "1450", "headroom_pct": "58"},
        {"rule": "profit-target", "status": "pending", "value": "-1050", "limit": "2000",
         "headroom": "3050", "headroom_pct": "152.5"},
        {"rule": "min-trading-days", "status": "pending", "value": "1", "limit": "3",
         "headroom": "2", "headroom_pct": "66.6667"}],
}


class RuleStatusPublic(BaseModel):
    """One rule now: money (or days, lots) as decimal strings."""

    model_config = ConfigDict(frozen=True)

    rule: StatusRule
    status: Status = Field(description="limits: ok|warning|violated; goals: pending|met|"
                                       "passed; consistency: ok|withheld")
    value: Decimal | None = Field(description="what the rule compares now (none: a rule "
                                              "judged only on an event)")
    limit: Decimal | None
    headroom: Decimal | None = Field(description="limit - value: left before a limit, or "
                                                 "still to make for a goal")
    headroom_pct: Decimal | None = Field(description="headroom as % of the limit")


class AssessmentRules(BaseModel):
    """The current phase's rules as its account stands at its last folded event."""

    model_config = ConfigDict(frozen=True,
                              json_schema_extra={"examples": [EXAMPLE_RULES_STATUS]})

    assessment_id: uuid.UUID
    account_id: uuid.UUID
    phase: PhaseName
    marked_at: datetime | None = Field(description="the last equity mark folded (none yet: "
                                                   "the figures of the opening)")
    version: int = Field(description="the account event the figures include (0: not open)")
    rules: list[RuleStatusPublic]


async def get_rule_status(conn: psycopg.AsyncConnection, account_id: uuid.UUID
                          ) -> tuple[int, datetime | None, list[RuleStatusPublic]] | None:
    """(version, last mark, statuses) of an account, or None before its rules exist."""
    cur = await conn.execute("SELECT version, marked_at_ns, rules::text FROM rule_status "
                             "WHERE account_id = %s", (account_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    version, marked_ns, text = row
    marked = None if not marked_ns else datetime.fromtimestamp(marked_ns // 1000 / 1e6, UTC)
    return version, marked, [RuleStatusPublic.model_validate(s) for s in json.loads(text)]


__all__ = ["EXAMPLE_RULES_STATUS", "AssessmentRules", "RuleStatusPublic", "get_rule_status"]
