"""The hash stamp is the one docs/rules.md writes down, and it stays put: a verdict judged
today must verify after the spec grows a defaulted parameter or a number changes scale."""

from __future__ import annotations

import hashlib
import json

from core.domain.rules import spec_digest
from tests.unit.core.rules.support import Account, D, rules


def sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def test_the_digest_is_sha256_of_the_documented_canonical_json() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    (daily,) = a.mark("2026-01-05T10:00:00+00:00", equity=94_000)

    spec = sha({"daily_loss_limit_pct": "5", "max_loss_pct": "10"})
    assert spec_digest(a.spec) == spec
    assert daily.digest == sha({
        "v": 1, "spec_version": 1, "spec": spec, "account": "acc-1", "kind": "violation",
        "rule": "daily-loss", "at_ns": 1_767_607_200_000_000_000, "events": [1, 2],
        "inputs": {"day_start_balance": "100000", "day_start_equity": "100000",
                   "equity": "94000", "limit": "5000", "value": "6000"}})
    # pinned: a change of the canonical form breaks every stored verdict's verification
    assert daily.digest == "182c34436ea1b893bb50b989ec39490b09ca17235a5dc555e3956e3f918185d9"


def test_a_parameter_at_its_default_leaves_the_spec_digest_alone() -> None:
    plain = rules()
    spelled = rules(day_boundary_tz="UTC", day_boundary_time="00:00",
                    warning_threshold_pct=D(80), max_loss_trailing_lock=True)
    assert spec_digest(plain) == spec_digest(spelled)
    assert spec_digest(plain) != spec_digest(rules(warning_threshold_pct=D(75)))
    assert spec_digest(plain) == spec_digest(rules(daily_loss_limit_pct=D("5.00")))
