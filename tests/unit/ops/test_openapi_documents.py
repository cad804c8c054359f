"""Both HTTP apps' OpenAPI documents, checked as a whole: the issue asks for a document with
examples for every endpoint, so a new route without them must fail here, not in review."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from core.entrypoints.http.app import create_app as create_core_app
from market_data.entrypoints.http.app import create_app as create_market_app
from propstream.settings import PlatformSettings as Settings
from tests.support.openapi import resolve

METHODS = {"get", "post", "put", "patch", "delete"}


def _documents() -> dict[str, dict[str, Any]]:
    settings = Settings()
    return {"core": create_core_app(settings).openapi(),
            "market": create_market_app(settings).openapi()}


DOCUMENTS = _documents()


def _operations() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for app, doc in DOCUMENTS.items():
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in METHODS:
                    yield f"{app} {method.upper()} {path}", app, op, doc


OPERATIONS = list(_operations())
IDS = [name for name, *_ in OPERATIONS]


def _examples(media: dict[str, Any], doc: dict[str, Any]) -> list[Any]:
    """Every example a reader would see for one media type: on it, or on its schema."""
    found: list[Any] = []
    if "example" in media:
        found.append(media["example"])
    found += [e["value"] for e in media.get("examples", {}).values() if "value" in e]
    schema = media.get("schema", {})
    for node in (schema, resolve(schema, doc)):
        found += node.get("examples", [])
        if "example" in node:
            found.append(node["example"])
    return found


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_nullable(s) for s in schema.get("anyOf", []))


def _stripped_null(error: jsonschema.ValidationError) -> bool:
    """FastAPI writes the document with exclude_none, so a null in an example disappears and
    its required-but-nullable property reads as missing: that is the renderer, not the example."""
    if error.validator != "required":
        return False
    missing = [name for name in error.validator_value if name not in error.instance]
    properties = error.schema.get("properties", {})
    return all(_nullable(properties.get(name, {})) for name in missing)


def _check(media: dict[str, Any], doc: dict[str, Any], where: str) -> None:
    examples = _examples(media, doc)
    assert examples, f"{where}: no example"
    schema = {**media.get("schema", {}), "components": doc.get("components", {})}
    validator = jsonschema.Draft202012Validator(schema)
    for example in examples:
        errors = [e for e in validator.iter_errors(example) if not _stripped_null(e)]
        assert not errors, f"{where}: {[e.message for e in errors]}"


def test_both_documents_have_operations() -> None:
    apps = {app for _, app, _, _ in OPERATIONS}
    assert apps == {"core", "market"}


@pytest.mark.parametrize(("name", "app", "op", "doc"), OPERATIONS, ids=IDS)
def test_operation_has_id_and_summary(
    name: str, app: str, op: dict[str, Any], doc: dict[str, Any]
) -> None:
    assert op.get("operationId"), name
    assert op.get("summary"), name


@pytest.mark.parametrize(("name", "app", "op", "doc"), OPERATIONS, ids=IDS)
def test_request_body_has_a_valid_example(
    name: str, app: str, op: dict[str, Any], doc: dict[str, Any]
) -> None:
    for media_type, media in op.get("requestBody", {}).get("content", {}).items():
        _check(media, doc, f"{name} body {media_type}")


@pytest.mark.parametrize(("name", "app", "op", "doc"), OPERATIONS, ids=IDS)
def test_success_answers_have_valid_examples(
    name: str, app: str, op: dict[str, Any], doc: dict[str, Any]
) -> None:
    for status, answer in op["responses"].items():
        if not status.startswith("2"):
            continue
        for media_type, media in answer.get("content", {}).items():
            if media_type == "application/json":
                _check(media, doc, f"{name} {status}")
            else:
                assert _examples(media, doc), f"{name} {status} {media_type}: no example"


@pytest.mark.parametrize(("name", "app", "op", "doc"), OPERATIONS, ids=IDS)
def test_error_answers_are_problem_json(
    name: str, app: str, op: dict[str, Any], doc: dict[str, Any]
) -> None:
    for status, answer in op["responses"].items():
        if not status.startswith(("4", "5")):
            continue
        content = answer.get("content", {})
        assert "application/problem+json" in content, f"{name} {status}"
