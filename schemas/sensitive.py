"""Marking secret and personal fields of the wire contracts, and leaving them out of replies.

A payload field whose value is a secret (a password or key hash) or personal data (an email,
a name, a payment provider's customer id) is annotated with `Sensitive`:

    Email = Annotated[str, Field(max_length=320), Sensitive("personal")]

The mark is in the exported JSON Schema (`x-sensitive`) and is what `redact` uses: command
replies, which travel to the API and on to callers, carry events without such fields. A test
fails for a field whose name looks secret or personal and carries no mark.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

SensitiveKind = Literal["secret", "personal"]


@dataclass(frozen=True, slots=True)
class Sensitive:
    """The mark of a field never to be shown outside the services that need it."""

    kind: SensitiveKind

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-sensitive"] = self.kind
        return schema


SECRET = Sensitive("secret")
PERSONAL = Sensitive("personal")

# A plan: for each field name, None (leave the field out) or the plan of the nested models.
Plan = dict[str, "Plan | None"]
_plans: dict[type[BaseModel], Plan] = {}


def _walk(annotation: Any) -> tuple[Sensitive | None, list[type[BaseModel]]]:
    """The mark anywhere in an annotation, and the models nested in it."""
    mark: Sensitive | None = None
    models: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None, [annotation]
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Sensitive):
            mark = meta
    for arg in typing.get_args(annotation):
        found, nested = _walk(arg)
        mark = mark or found
        models += nested
    return mark, models


def sensitivity(model: type[BaseModel], name: str) -> SensitiveKind | None:
    """The kind of the mark on `model.name`, or None for an ordinary field."""
    info = model.model_fields[name]
    for meta in info.metadata:
        if isinstance(meta, Sensitive):
            return meta.kind
    mark, _ = _walk(info.annotation)
    return None if mark is None else mark.kind


def plan_of(model: type[BaseModel]) -> Plan:
    """What `redact` removes from a dump of `model` (cached per model)."""
    known = _plans.get(model)
    if known is not None:
        return known
    plan: Plan = {}
    _plans[model] = plan  # a self-referencing model ends here
    for name, info in model.model_fields.items():
        if sensitivity(model, name) is not None:
            plan[name] = None
            continue
        _, nested = _walk(info.annotation)
        merged: Plan = {}
        for sub in nested:
            merged.update(plan_of(sub))
        if merged:
            plan[name] = merged
    return plan


def redact(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a JSON dump of `model`) without its sensitive fields, nested ones too."""
    plan = plan_of(model)
    return _apply(plan, data) if plan else data


def _apply(plan: Plan, data: Any) -> Any:
    if isinstance(data, list | tuple):
        return [_apply(plan, item) for item in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key not in plan:
            out[key] = value
        elif (sub := plan[key]) is not None:
            out[key] = _apply(sub, value)
    return out
