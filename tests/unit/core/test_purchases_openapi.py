"""The payments part of the OpenAPI document: ids, summaries, examples and problem answers."""

from __future__ import annotations

from typing import Any

import pytest

from core.entrypoints.http.app import create_app
from propstream.settings import PlatformSettings as Settings

PATHS = ("/purchases", "/purchases/{purchase_id}", "/admin/grants", "/webhooks/stripe")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(Settings()).openapi()
    return spec


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path in PATHS
            for method, op in document["paths"][path].items()]


def test_every_payment_operation_has_an_id_a_summary_and_problem_errors(
        document: dict[str, Any]) -> None:
    seen = operations(document)
    assert len(seen) == 5
    for path, method, op in seen:
        assert op.get("operationId") and op.get("summary"), (path, method)
        errors = [code for code in op["responses"] if code.startswith(("4", "5"))]
        assert errors, (path, method)
        for code in errors:
            if code == "422" and "application/json" in op["responses"][code].get("content", {}):
                continue  # FastAPI's own validation entry; answered as problem+json at runtime
            assert "application/problem+json" in op["responses"][code]["content"], (path, code)


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    for path, method, op in operations(document):
        body = op.get("requestBody")
        if body is None:
            continue
        content = body["content"]["application/json"]
        schema = content.get("schema", {})
        assert "example" in content or "examples" in content or "examples" in schema, \
            (path, method)


def test_webhook_takes_no_bearer_token_but_documents_the_signature(
        document: dict[str, Any]) -> None:
    op = document["paths"]["/webhooks/stripe"]["post"]
    assert "security" not in op
    assert [p["name"] for p in op["parameters"]] == ["Stripe-Signature"]
