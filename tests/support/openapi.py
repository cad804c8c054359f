"""Reading our own OpenAPI documents in tests."""

from __future__ import annotations

from typing import Any


def resolve(node: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (one level is all FastAPI emits for bodies and answers)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    out: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        out = out[part]
    return out  # type: ignore[no-any-return]
