"""The tier routes' OpenAPI document: stable ids, examples on every body and answer, and
problem+json for every error status."""

from __future__ import annotations

from typing import Any

import pytest

from core.entrypoints.http.app import create_app
from propstream.settings import PlatformSettings as Settings
from schemas.tier import TierTerms


@pytest.fixture(scope="module")
def operations() -> dict[str, dict[str, Any]]:
    doc = create_app(Settings(env="test")).openapi()
    return {op["operationId"]: op for path, ops in doc["paths"].items()
            if path.startswith("/tiers") for op in ops.values()}


def test_every_tier_operation_is_documented(operations: dict[str, dict[str, Any]]) -> None:
    assert sorted(operations) == ["createTier", "getTier", "getTierRevision", "listTiers",
                                  "reactivateTier", "retireTier", "reviseTier"]
    for op_id, op in operations.items():
        assert op["summary"], op_id
        success = [s for s in op["responses"] if s in ("200", "201")]
        assert success, op_id
        for status in success:
            assert "example" in op["responses"][status]["content"]["application/json"], op_id
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                assert "application/problem+json" in answer["content"], (op_id, status)


def test_every_request_body_has_a_valid_realistic_example(
    operations: dict[str, dict[str, Any]]
) -> None:
    bodies = {op_id: op["requestBody"]["content"]["application/json"]["schema"]["examples"]
              for op_id, op in operations.items() if "requestBody" in op}
    assert sorted(bodies) == ["createTier", "retireTier", "reviseTier"]
    for example in bodies["createTier"] + bodies["reviseTier"]:
        terms = TierTerms.model_validate(example["terms"])
        assert len(terms.phases) == 3 and terms.currency == "USD"
