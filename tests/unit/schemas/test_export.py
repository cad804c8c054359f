"""The committed JSON Schema / AsyncAPI export: up to date, complete, and checked for staleness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas import FAMILIES, default_registry, instrument
from schemas.envelope import EventPayload
from schemas.export import export_all, render, stale_files
from schemas.registry import build_registry
from schemas.topics import CATALOGUE

COMMITTED = Path(schemas.__file__).parent / "export"


class InstrumentHaltedWithUntil(EventPayload):
    """A changed model under a published type, as a careless edit would make it."""

    TYPE = "instrument.halted"

    reason: str
    until: str | None = None


@pytest.fixture
def export_copy(tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(COMMITTED, target)
    return target


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((COMMITTED / "asyncapi.json").read_text("utf-8"))
    return document


def test_committed_export_is_not_stale() -> None:
    assert stale_files(COMMITTED) == [], "run `propstream schemas export` and commit the result"


def test_stale_files_when_a_model_changed_without_export_reports_its_files() -> None:
    groups = []
    for family in FAMILIES:
        events = tuple(InstrumentHaltedWithUntil if m is instrument.InstrumentHalted else m
                       for m in family.events)
        groups += [family.commands, events]
    changed = build_registry(groups)

    stale = stale_files(COMMITTED, registry=changed)

    assert stale == ["asyncapi.json", "events/instrument.halted.v1.json"]


def test_stale_files_when_a_file_is_edited_reports_it(export_copy: Path) -> None:
    path = export_copy / "commands" / "instrument.halt.v1.json"
    path.write_text(path.read_text("utf-8").replace('"reason"', '"cause"'), "utf-8")

    assert stale_files(export_copy) == ["commands/instrument.halt.v1.json"]


def test_stale_files_when_a_file_is_missing_reports_it(export_copy: Path) -> None:
    (export_copy / "envelopes" / "event-envelope.json").unlink()

    assert stale_files(export_copy) == ["envelopes/event-envelope.json"]


def test_stale_files_when_an_old_file_is_left_over_reports_it(export_copy: Path) -> None:
    (export_copy / "events" / "instrument.retired.v1.json").write_text("{}\n", "utf-8")

    assert stale_files(export_copy) == ["events/instrument.retired.v1.json"]


def test_stale_files_when_trailing_newline_is_lost_reports_it(export_copy: Path) -> None:
    path = export_copy / "asyncapi.json"
    path.write_text(path.read_text("utf-8").rstrip("\n"), "utf-8")

    assert stale_files(export_copy) == ["asyncapi.json"]


def test_export_all_into_a_folder_with_leftovers_removes_them_and_keeps_other_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "instrument.retired.v1.json").write_text("{}\n", "utf-8")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "old.json").write_text("{}\n", "utf-8")
    (tmp_path / "README.md").write_text("not ours\n", "utf-8")

    written = export_all(tmp_path)

    assert stale_files(tmp_path) == []
    assert not (tmp_path / "events" / "instrument.retired.v1.json").exists()
    assert not (tmp_path / "gone").exists()
    assert (tmp_path / "README.md").read_text("utf-8") == "not ours\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(render())


def test_render_twice_gives_identical_text() -> None:
    assert render() == render()


def test_render_gives_sorted_keys_and_a_trailing_newline() -> None:
    for relative, text in render().items():
        assert text.endswith("}\n"), relative
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n", relative


def test_every_registered_type_has_a_schema_file_per_version() -> None:
    files = render()
    for model in default_registry().types():
        folder = "events" if issubclass(model, EventPayload) else "commands"
        schema = json.loads(files[f"{folder}/{model.TYPE}.v{model.VERSION}.json"])
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == model.__name__


def test_envelope_and_reply_schemas_are_exported() -> None:
    files = render()
    assert json.loads(files["envelopes/event-envelope.json"])["title"] == "EventEnvelope"
    assert json.loads(files["envelopes/command-envelope.json"])["title"] == "CommandEnvelope"
    assert json.loads(files["replies/command-reply.json"])["title"] == "CommandReply"


def test_asyncapi_document_is_version_3_0_0(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] == "propstream"


def test_asyncapi_has_one_channel_per_catalogue_topic(asyncapi: dict[str, Any]) -> None:
    assert sorted(asyncapi["channels"]) == sorted(spec.name for spec in CATALOGUE)
    for spec in CATALOGUE:
        channel = asyncapi["channels"][spec.name]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == spec.name
        assert kafka["partitions"] == spec.partitions
        assert kafka["topicConfiguration"]["retention.ms"] == spec.retention_ms
        assert kafka["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert channel["x-propstream-key"] == spec.key
        assert channel.get("x-propstream-dead-letter") == spec.dead_letter


def test_asyncapi_has_a_message_for_every_carried_type(asyncapi: dict[str, Any]) -> None:
    registry = default_registry()
    messages = asyncapi["components"]["messages"]
    for spec in CATALOGUE:
        channel_messages = asyncapi["channels"][spec.name]["messages"]
        for type_ in spec.carries:
            mid = f"{type_}.v{registry.model(type_).VERSION}" if type_ in registry else type_
            assert channel_messages[mid] == {"$ref": f"#/components/messages/{mid}"}
            assert mid in messages


def test_asyncapi_payload_message_wraps_the_type_in_its_envelope(
    asyncapi: dict[str, Any],
) -> None:
    message = asyncapi["components"]["messages"]["instrument.registered.v1"]
    envelope, specifics = message["payload"]["allOf"]

    assert envelope == {"$ref": "#/components/schemas/EventEnvelope"}
    assert specifics["properties"]["type"] == {"const": "instrument.registered"}
    assert specifics["properties"]["version"] == {"const": 1}
    assert specifics["properties"]["payload"] == {
        "$ref": "#/components/schemas/InstrumentRegistered"
    }


def test_asyncapi_refs_all_resolve(asyncapi: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for item in node for r in refs(item)]
        return []

    for ref in refs(asyncapi):
        node: Any = asyncapi
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


def test_asyncapi_has_send_and_receive_operations_per_channel(asyncapi: dict[str, Any]) -> None:
    operations = asyncapi["operations"]
    for spec in CATALOGUE:
        for action in ("send", "receive"):
            operation = operations[f"{spec.name}.{action}"]
            assert operation["action"] == action
            assert operation["channel"] == {"$ref": f"#/channels/{spec.name}"}
            assert len(operation["messages"]) == len(
                asyncapi["channels"][spec.name]["messages"]
            )
