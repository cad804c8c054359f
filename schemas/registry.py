"""Every event and command type we publish, by (type, version), with upcasters for old versions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas import fastcodec
from schemas.envelope import CommandEnvelope, CommandPayload, EventEnvelope, EventPayload, Payload
from schemas.errors import DecodeError, UnknownTypeError
from schemas.sensitive import redact

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
P = TypeVar("P", bound=Payload)


class TypeRegistry:
    """Maps `(type, version)` to a payload model and old versions to the current one.

    A type string never changes once published; a new shape is a new `VERSION` of the model
    plus an upcaster from the previous version, applied on read.
    """

    def __init__(self) -> None:
        self._current: dict[str, type[Payload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, *models: type[P]) -> None:
        for model in models:
            known = self._current.get(model.TYPE)
            if known is not None and known is not model:
                raise ValueError(f"type {model.TYPE!r} is registered twice")
            self._current[model.TYPE] = model

    def register_upcaster(self, type_: str, from_version: int, fn: Upcaster) -> None:
        """Register `fn`, turning a `from_version` payload into a `from_version + 1` one."""
        self._upcasters[(type_, from_version)] = fn

    def model(self, type_: str) -> type[Payload]:
        try:
            return self._current[type_]
        except KeyError:
            raise UnknownTypeError(type_, 0) from None

    def __contains__(self, type_: object) -> bool:
        return type_ in self._current

    def types(self) -> list[type[Payload]]:
        return [self._current[k] for k in sorted(self._current)]

    def event_types(self) -> list[type[EventPayload]]:
        return [m for m in self.types() if issubclass(m, EventPayload)]

    def command_types(self) -> list[type[CommandPayload]]:
        return [m for m in self.types() if issubclass(m, CommandPayload)]

    def upcast(self, type_: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        model = self._current.get(type_)
        if model is None:
            raise UnknownTypeError(type_, version)
        if version > model.VERSION:
            raise DecodeError(
                "unsupported-version",
                f"{type_!r} version {version} is newer than this build knows ({model.VERSION})",
            )
        while version < model.VERSION:
            step = self._upcasters.get((type_, version))
            if step is None:
                raise DecodeError(
                    "unsupported-version", f"no upcaster from {type_!r} version {version}"
                )
            payload = step(payload)
            version += 1
        return payload

    def parse(self, type_: str, version: int, payload: dict[str, Any]) -> Payload:
        """Return the typed payload at the current version, upcasting old ones."""
        model = self._current.get(type_)
        if model is not None and version == model.VERSION and fastcodec.has_payload(model):
            try:  # the compiled path: the same model, or it steps aside (schemas/fastcodec.py)
                return fastcodec.convert(payload, model)
            except fastcodec.Fallback:
                pass
        data = self.upcast(type_, version, payload)
        model = self._current[type_]
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise DecodeError("invalid-payload", _summarise(type_, exc)) from None

    def redacted(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event (a JSON envelope) fit to leave the services, in a command reply: its
        payload at the current version without the fields marked sensitive. Fail closed: a
        payload this build cannot read is left out whole."""
        model = self._current.get(str(event.get("type")))
        payload = event.get("payload")
        if model is None or not isinstance(payload, dict):
            return {**event, "payload": {}}
        try:
            current = self.upcast(model.TYPE, int(event.get("version", 1)), payload)
        except (DecodeError, TypeError, ValueError):
            return {**event, "payload": {}}
        return {**event, "version": model.VERSION, "payload": redact(model, current)}

    def event_payload(self, envelope: EventEnvelope) -> EventPayload:
        parsed = self.parse(envelope.type, envelope.version, envelope.payload)
        if not isinstance(parsed, EventPayload):
            raise DecodeError("not-an-event", f"{envelope.type!r} is a command type")
        return parsed

    def command_payload(self, envelope: CommandEnvelope) -> CommandPayload:
        parsed = self.parse(envelope.type, envelope.version, envelope.payload)
        if not isinstance(parsed, CommandPayload):
            raise DecodeError("not-a-command", f"{envelope.type!r} is an event type")
        return parsed


def _summarise(type_: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return f"{type_}: " + "; ".join(parts)


def build_registry(modules: Iterable[Iterable[type[Payload]]]) -> TypeRegistry:
    registry = TypeRegistry()
    for models in modules:
        registry.register(*models)
    return registry
