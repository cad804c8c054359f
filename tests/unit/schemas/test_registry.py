"""The type registry: lookups, upcasting old versions, and refusing ambiguous registrations."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from schemas.envelope import CommandPayload, EventPayload
from schemas.errors import DecodeError, UnknownTypeError
from schemas.registry import TypeRegistry


class NoteAddedV1(EventPayload):
    TYPE = "note.added"

    text: str


class NoteAdded(EventPayload):
    """Version 2 split the text into a title and a body."""

    TYPE = "note.added"
    VERSION: ClassVar[int] = 2

    title: str
    body: str


class NoteAddedV3(EventPayload):
    TYPE = "note.added"
    VERSION: ClassVar[int] = 3

    title: str
    body: str
    pinned: bool


class AddNote(CommandPayload):
    TYPE = "note.add"

    text: str


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    title, _, body = payload["text"].partition("\n")
    return {"title": title, "body": body}


def _registry(*models: type[EventPayload] | type[CommandPayload]) -> TypeRegistry:
    registry = TypeRegistry()
    registry.register(*models)
    return registry


def test_parse_when_payload_is_v1_and_upcaster_exists_returns_v2_model() -> None:
    registry = _registry(NoteAdded)
    registry.register_upcaster("note.added", 1, _v1_to_v2)

    parsed = registry.parse("note.added", 1, {"text": "groceries\nmilk, eggs"})

    assert parsed == NoteAdded(title="groceries", body="milk, eggs")


def test_parse_when_payload_is_current_version_skips_upcasters() -> None:
    registry = _registry(NoteAdded)
    registry.register_upcaster("note.added", 1, _v1_to_v2)

    assert registry.parse("note.added", 2, {"title": "a", "body": "b"}) == NoteAdded(
        title="a", body="b"
    )


def test_parse_when_two_versions_behind_chains_upcasters() -> None:
    registry = _registry(NoteAddedV3)
    registry.register_upcaster("note.added", 1, _v1_to_v2)
    registry.register_upcaster("note.added", 2, lambda p: {**p, "pinned": False})

    parsed = registry.parse("note.added", 1, {"text": "title\nbody"})

    assert parsed == NoteAddedV3(title="title", body="body", pinned=False)


def test_parse_when_upcaster_is_missing_raises_unsupported_version() -> None:
    registry = _registry(NoteAdded)

    with pytest.raises(DecodeError) as caught:
        registry.parse("note.added", 1, {"text": "groceries"})

    assert caught.value.reason == "unsupported-version"


def test_parse_when_version_is_newer_than_registered_raises_unsupported_version() -> None:
    registry = _registry(NoteAddedV1)

    with pytest.raises(DecodeError) as caught:
        registry.parse("note.added", 2, {"title": "a", "body": "b"})

    assert caught.value.reason == "unsupported-version"


def test_parse_when_upcast_payload_is_invalid_raises_invalid_payload() -> None:
    registry = _registry(NoteAdded)
    registry.register_upcaster("note.added", 1, lambda p: {"title": p["text"]})

    with pytest.raises(DecodeError) as caught:
        registry.parse("note.added", 1, {"text": "no body"})

    assert caught.value.reason == "invalid-payload"
    assert "body" in str(caught.value)


def test_parse_when_type_is_unknown_raises_unknown_type() -> None:
    with pytest.raises(UnknownTypeError) as caught:
        _registry(NoteAdded).parse("note.deleted", 1, {})

    assert caught.value.reason == "unknown-type"
    assert caught.value.version == 1


def test_register_when_two_models_share_a_type_fails() -> None:
    registry = _registry(NoteAddedV1)

    with pytest.raises(ValueError, match=r"note\.added"):
        registry.register(NoteAdded)


def test_register_when_same_model_twice_is_idempotent() -> None:
    registry = _registry(NoteAdded)
    registry.register(NoteAdded)

    assert registry.types() == [NoteAdded]


def test_types_are_split_by_kind_and_sorted_by_type() -> None:
    registry = _registry(NoteAdded, AddNote)

    assert registry.types() == [AddNote, NoteAdded]
    assert registry.event_types() == [NoteAdded]
    assert registry.command_types() == [AddNote]
    assert "note.add" in registry
    assert "note.removed" not in registry
    assert registry.model("note.added") is NoteAdded
