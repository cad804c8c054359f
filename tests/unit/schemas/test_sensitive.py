"""Sensitive fields of the wire contracts: every one that looks secret or personal is marked,
and the marked ones never reach a command reply."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from schemas import default_registry
from schemas.envelope import make_event
from schemas.identity import UserApiKeyCreated, UserRegistered
from schemas.sensitive import _walk, redact, sensitivity

REGISTRY = default_registry()
LOOKS_SENSITIVE = re.compile(r"hash|password|passwd|secret|email|mail|name|customer|phone|"
                             r"address|token|iban|card|birth|ssn|ip$|^ip_|credential|key$")
# Names that match but hold nothing of a person or a credential, each with the reason.
NOT_SENSITIVE: dict[tuple[str, str], str] = {
    ("TierTerms", "name"): "the product name of a tier, shown in the shop",
    ("TierPhase", "name"): "the name of a phase of a tier's assessment",
    ("UserApiKeyCreated", "key_id"): "the public id of a key, printed in its prefix",
    ("CreateApiKey", "key_id"): "the public id of a key, printed in its prefix",
    ("UserApiKeyRevoked", "key_id"): "the public id of a key, printed in its prefix",
    ("RevokeApiKey", "key_id"): "the public id of a key, printed in its prefix",
    ("RegisterUser", "credential_id"): "names a row of the credential store; holds no secret",
    ("UserRegistered", "credential_id"): "names a row of the credential store; holds no secret",
    ("ChangeUserPassword", "credential_id"): "names a row of the credential store",
    ("UserPasswordChanged", "credential_id"): "names a row of the credential store",
    ("ChangeUserPassword", "rehash"): "a flag: the same password re-stored after a login",
}


def _models() -> Iterator[type[BaseModel]]:
    """Every payload model and every model nested in one."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = list(REGISTRY.types())
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        yield model
        for info in model.model_fields.values():
            todo += _walk(info.annotation)[1]


def test_every_field_that_looks_secret_or_personal_is_marked() -> None:
    unmarked = sorted(
        f"{model.__name__}.{name}"
        for model in _models() for name in model.model_fields
        if LOOKS_SENSITIVE.search(name) and sensitivity(model, name) is None
        and (model.__name__, name) not in NOT_SENSITIVE)
    assert not unmarked, ("mark these with schemas.sensitive (SECRET or PERSONAL), or list "
                          f"them in NOT_SENSITIVE with the reason: {unmarked}")


def test_the_guard_catches_an_unmarked_new_field() -> None:
    class CustomerAttached(BaseModel):
        customer_email: str

    assert LOOKS_SENSITIVE.search("customer_email")
    assert sensitivity(CustomerAttached, "customer_email") is None


def test_the_marks_are_in_the_exported_json_schema() -> None:
    props = UserRegistered.model_json_schema()["properties"]
    # An optional field carries the mark on its non-null branch.
    assert [b.get("x-sensitive") for b in props["legacy_password_hash"]["anyOf"]] == [
        "secret", None]
    assert props["email"]["x-sensitive"] == "personal"
    assert "x-sensitive" not in props["role"]


def _event(payload: Any) -> dict[str, Any]:
    return make_event(payload, aggregate_id="u1", sequence=1, occurred_at=datetime.now(UTC),
                      correlation_id=uuid.uuid4(), causation_id=uuid.uuid4(),
                      event_id=uuid.uuid4(), actor="u1").model_dump(mode="json")


def test_a_reply_event_leaves_out_hashes_and_personal_data_and_keeps_the_rest() -> None:
    credential = uuid.uuid4()
    event = _event(UserRegistered(email="s1:bm9uY2U:Y2lwaGVy", display_name="p0:Ada",
                                  role="trader", credential_id=credential))
    out = REGISTRY.redacted(event)
    assert out["payload"] == {"role": "trader", "credential_id": str(credential)}
    assert {k: v for k, v in out.items() if k != "payload"} == {
        k: v for k, v in event.items() if k != "payload"}
    key = REGISTRY.redacted(_event(UserApiKeyCreated(
        key_id="0123456789ab", name="p0:laptop", scopes=("reports:read",))))
    assert key["payload"] == {"key_id": "0123456789ab", "scopes": ["reports:read"]}


def test_a_version_1_event_from_an_old_log_is_upcast_then_stripped_of_its_plain_text() -> None:
    old = {**_event(UserRegistered(email="p0:x", display_name="p0:x", role="trader",
                                   credential_id=uuid.uuid4())), "version": 1,
           "payload": {"email": "ada@example.com", "display_name": "Ada", "role": "trader",
                       "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ"}}
    out = REGISTRY.redacted(old)
    text = str(out)
    assert "ada@example.com" not in text and "Ada" not in text and "$argon2id$" not in text
    assert out["payload"]["role"] == "trader"


def test_an_event_this_build_cannot_read_loses_its_whole_payload() -> None:
    odd = {"type": "user.registered", "version": 99, "payload": {"email": "x@example.com"}}
    assert REGISTRY.redacted(odd)["payload"] == {}
    unknown = {"type": "user.secret-kept", "version": 1, "payload": {"anything": 1}}
    assert REGISTRY.redacted(unknown)["payload"] == {}


def test_nested_models_and_lists_of_them_are_redacted_too() -> None:
    from typing import Annotated

    from schemas.sensitive import PERSONAL

    class Inner(BaseModel):
        email: Annotated[str, PERSONAL]
        kind: str

    class Outer(BaseModel):
        one: Inner | None
        many: tuple[Inner, ...]

    data = {"one": {"email": "a@b.c", "kind": "x"},
            "many": [{"email": "d@e.f", "kind": "y"}]}
    assert redact(Outer, data) == {"one": {"kind": "x"}, "many": [{"kind": "y"}]}
