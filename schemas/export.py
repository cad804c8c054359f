"""JSON Schema for every wire type and an AsyncAPI 3.0 document of the topic catalogue.

The output is deterministic (sorted keys, fixed order, trailing newline), so comparing a fresh
render with the committed files tells whether someone changed a model and forgot to export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas import default_registry, ws
from schemas.envelope import CommandEnvelope, CommandPayload, EventEnvelope, EventPayload, Payload
from schemas.registry import TypeRegistry
from schemas.replies import CommandReply
from schemas.topics import CATALOGUE, TopicSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
# The version of the contract set as a whole; bump it when a type gets a new version.
CONTRACT_VERSION = "0.1.0"

# Wire types that are not event or command payloads, by the name `TopicSpec.carries` uses.
OTHER_TYPES: Mapping[str, type[BaseModel]] = {"command-reply": CommandReply}

# Files under the export folder that this module owns; anything else there is left alone.
MANAGED_SUFFIX = ".json"

Json = dict[str, Any]


# -- rendering ---------------------------------------------------------------------------------


def _dump(document: Json) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _standalone_schema(model: type[BaseModel], comment: str) -> Json:
    schema = model.model_json_schema()
    return {"$schema": JSON_SCHEMA_DIALECT, "$comment": comment, **schema}


def _payload_file(model: type[Payload]) -> str:
    folder = "events" if issubclass(model, EventPayload) else "commands"
    return f"{folder}/{model.TYPE}.v{model.VERSION}.json"


def render(
    *,
    registry: TypeRegistry | None = None,
    catalogue: Iterable[TopicSpec] = CATALOGUE,
) -> dict[str, str]:
    """Return every export file's text by its path relative to the export folder."""
    registry = registry if registry is not None else default_registry()
    files: dict[str, str] = {}
    for model in registry.types():
        if not issubclass(model, EventPayload | CommandPayload):
            raise TypeError(f"{model.__name__} is neither an event nor a command payload")
        files[_payload_file(model)] = _dump(
            _standalone_schema(model, f"payload of {model.TYPE} version {model.VERSION}")
        )
    files["envelopes/event-envelope.json"] = _dump(
        _standalone_schema(EventEnvelope, "the envelope of every event")
    )
    files["envelopes/command-envelope.json"] = _dump(
        _standalone_schema(CommandEnvelope, "the envelope of every command")
    )
    files["replies/command-reply.json"] = _dump(
        _standalone_schema(CommandReply, "the decided outcome of a command")
    )
    files["asyncapi.json"] = _dump(asyncapi_document(registry, tuple(catalogue)))
    files["ws-gateway.asyncapi.json"] = _dump(ws.asyncapi_document(CONTRACT_VERSION))
    return dict(sorted(files.items()))


# -- AsyncAPI ----------------------------------------------------------------------------------


def _message_id(model: type[BaseModel]) -> str:
    if issubclass(model, Payload):
        return f"{model.TYPE}.v{model.VERSION}"
    for name, other in OTHER_TYPES.items():
        if other is model:
            return name
    raise TypeError(f"{model.__name__} is not a wire type")


def _carried_models(spec: TopicSpec, registry: TypeRegistry) -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = []
    for type_ in spec.carries:
        if type_ in registry:
            models.append(registry.model(type_))
        elif type_ in OTHER_TYPES:
            models.append(OTHER_TYPES[type_])
        else:
            raise ValueError(f"topic {spec.name!r} carries {type_!r}, which no model describes")
    return models


def _ref(*parts: str) -> Json:
    # JSON Pointer escaping (RFC 6901): our names use neither "~" nor "/", but be exact.
    escaped = [p.replace("~", "~0").replace("/", "~1") for p in parts]
    return {"$ref": "#/" + "/".join(escaped)}


def _summary(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else model.__name__


def _key_binding(spec: TopicSpec) -> Json:
    return {
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"type": "string", "description": spec.key},
            }
        }
    }


def _envelope_message(
    model: type[Payload], spec: TopicSpec, envelope_ref: Json, payload_ref: Json
) -> Json:
    return {
        "name": model.TYPE,
        "title": model.__name__,
        "summary": _summary(model),
        "contentType": "application/json",
        "payload": {
            "allOf": [
                envelope_ref,
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": model.TYPE},
                        "version": {"const": model.VERSION},
                        "payload": payload_ref,
                    },
                },
            ]
        },
        "x-propstream-type": model.TYPE,
        "x-propstream-version": model.VERSION,
        **_key_binding(spec),
    }


def _plain_message(name: str, model: type[BaseModel], spec: TopicSpec, ref: Json) -> Json:
    return {
        "name": name,
        "title": model.__name__,
        "summary": _summary(model),
        "contentType": "application/json",
        "payload": ref,
        **_key_binding(spec),
    }


DEAD_LETTER_MESSAGE = "dead-letter"
SNAPSHOT_MESSAGE = "decider-snapshot"
# Written by kernel/dlq.py (DeadLetterSink.send); this is the contract it follows.
DEAD_LETTER_HEADERS: Mapping[str, str] = {
    "x-error-reason": "stable reason code (a DecodeError reason or the exception class name)",
    "x-error": "the error message, at most 2,000 characters",
    "x-origin-topic": "the topic the message was read from",
    "x-origin-partition": "its partition, in decimal",
    "x-origin-offset": "its offset, in decimal",
    "x-consumer": "the consumer that gave up on it",
    "x-failed-at-ms": "when, in milliseconds since the Unix epoch, in decimal",
    "x-truncated": "`true` when the value was cut to 900 KiB",
}


def _snapshot_message() -> Json:
    return {
        "name": SNAPSHOT_MESSAGE,
        "title": "DeciderSnapshot",
        "summary": "One chunk of a decider partition's state, or the manifest that commits them.",
        "description": "Key `<partition>:manifest` holds {snapshot_id, partition, events_offset, "
        "chunks, taken_at}; key `<partition>:<n>` holds {snapshot_id, index, items}. A "
        "snapshot counts only when every chunk carries the manifest's snapshot_id. Internal "
        "to the decider: not a contract for other consumers.",
        "payload": {"type": "object"},
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"type": "string", "pattern": "^[0-9]+:(manifest|[0-9]+)$"},
            }
        },
    }


def _dead_letter_message() -> Json:
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "DeadLetter",
        "summary": "A message a consumer could not decode or apply, parked with its error.",
        "description": "The value and key are the original message's bytes, unchanged unless "
        "`x-truncated` is set; they need not be valid JSON.",
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string", "description": text}
                for name, text in DEAD_LETTER_HEADERS.items()
            },
            "required": sorted(set(DEAD_LETTER_HEADERS) - {"x-truncated"}),
        },
        "payload": {"description": "the original message value, as it was"},
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"type": "string", "description": "the original message key"},
            }
        },
    }


def _channel(spec: TopicSpec, message_ids: list[str]) -> Json:
    channel: Json = {
        "address": spec.name,
        "description": spec.description,
        "messages": {mid: _ref("components", "messages", mid) for mid in message_ids},
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "partitions": spec.partitions,
                "topicConfiguration": {
                    "cleanup.policy": [spec.cleanup_policy],
                    "retention.ms": spec.retention_ms,
                    "max.message.bytes": int(spec.config()["max.message.bytes"]),
                },
            }
        },
        "x-propstream-kind": spec.kind,
        "x-propstream-key": spec.key,
    }
    if spec.dead_letter is not None:
        channel["x-propstream-dead-letter"] = spec.dead_letter
    return channel


# Who writes and who reads each kind of topic, for the operations' summaries.
_ROLES: Mapping[str, tuple[str, str]] = {
    "commands": ("the API publishes a validated command", "the family's decider decides it"),
    "events": (
        "the family's decider appends decided events",
        "projections and processors consume the log",
    ),
    "replies": (
        "the decider answers with the decided outcome",
        "the API instance waiting on the command reads it",
    ),
    "stream": (
        "a publisher or processor appends facts (tick batches, closed bars)",
        "processors, projections and the WebSocket gateway consume them",
    ),
    "snapshots": (
        "the family's decider writes its partition state, chunks then a manifest",
        "the decider reads the newest complete snapshot when it takes a partition",
    ),
    "dead-letters": (
        "a consumer parks a message it cannot decode or apply",
        "operators inspect and re-drive (`propstream dlq`)",
    ),
}


def _operations(spec: TopicSpec, message_ids: list[str]) -> dict[str, Json]:
    sends, receives = _ROLES[spec.kind]
    messages = [_ref("channels", spec.name, "messages", mid) for mid in message_ids]
    return {
        f"{spec.name}.send": {
            "action": "send",
            "channel": _ref("channels", spec.name),
            "summary": sends,
            "messages": messages,
        },
        f"{spec.name}.receive": {
            "action": "receive",
            "channel": _ref("channels", spec.name),
            "summary": receives,
            "messages": messages,
        },
    }


def asyncapi_document(registry: TypeRegistry, catalogue: tuple[TopicSpec, ...]) -> Json:
    """Return the AsyncAPI 3.0 document: a channel per topic, its messages and operations."""
    carried: list[tuple[TopicSpec, list[type[BaseModel]]]] = []
    seen_topics: set[str] = set()
    schema_models: list[type[BaseModel]] = [EventEnvelope, CommandEnvelope]
    for spec in catalogue:
        if spec.name in seen_topics:
            raise ValueError(f"topic {spec.name!r} is twice in the catalogue")
        seen_topics.add(spec.name)
        models = _carried_models(spec, registry)
        carried.append((spec, models))
        schema_models.extend(models)

    # One shared set of definitions; pydantic names them and disambiguates equal class names.
    ref_map, definitions = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(schema_models)],
        ref_template="#/components/schemas/{model}",
    )
    refs = {model: ref for (model, _), ref in ref_map.items()}

    channels: dict[str, Json] = {}
    operations: dict[str, Json] = {}
    messages: dict[str, Json] = {}
    for spec, models in carried:
        message_ids: list[str] = []
        if spec.kind == "dead-letters":
            messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()
            message_ids.append(DEAD_LETTER_MESSAGE)
        if spec.kind == "snapshots":
            messages[SNAPSHOT_MESSAGE] = _snapshot_message()
            message_ids.append(SNAPSHOT_MESSAGE)
        for model in models:
            mid = _message_id(model)
            if mid in messages:
                raise ValueError(f"{mid!r} is carried by more than one topic")
            if issubclass(model, Payload):
                envelope = EventEnvelope if issubclass(model, EventPayload) else CommandEnvelope
                messages[mid] = _envelope_message(model, spec, refs[envelope], refs[model])
            else:
                messages[mid] = _plain_message(mid, model, spec, refs[model])
            message_ids.append(mid)
        channels[spec.name] = _channel(spec, message_ids)
        operations.update(_operations(spec, message_ids))

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "propstream",
            "version": CONTRACT_VERSION,
            "description": "Every Kafka topic of propstream, the messages it carries and who "
            "sends and receives them. Addresses are logical topic names; a deployment may "
            "prefix them with its namespace (`PROPSTREAM_NAMESPACE`).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": definitions.get("$defs", {}), "messages": messages},
    }


# -- files -------------------------------------------------------------------------------------


def _managed_files(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob(f"*{MANAGED_SUFFIX}")
        if p.is_file()
    }


def export_all(out: Path) -> list[Path]:
    """Write every export file into `out`, remove the ones no longer produced; return the set."""
    files = render()
    for relative in sorted(_managed_files(out) - files.keys()):
        (out / relative).unlink()
    written: list[Path] = []
    for relative, text in files.items():
        path = out / relative
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        written.append(path)
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return written


def stale_files(out: Path, *, registry: TypeRegistry | None = None) -> list[str]:
    """Return the paths under `out` that are missing, different, or no longer produced."""
    files = render(registry=registry)
    stale = set(_managed_files(out) - files.keys())
    for relative, text in files.items():
        path = out / relative
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            stale.add(relative)
    return sorted(stale)
