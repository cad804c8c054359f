"""The topic catalogue is consistent with itself and with the type registry."""

from __future__ import annotations

from collections import Counter

import pytest

from schemas import FAMILIES, default_registry
from schemas.envelope import CommandPayload, EventPayload
from schemas.topics import CATALOGUE, REPLIES, TopicSpec, topic

REGISTRY = default_registry()


def _of_kind(kind: str) -> list[TopicSpec]:
    return [spec for spec in CATALOGUE if spec.kind == kind]


def _family(spec: TopicSpec) -> str:
    return spec.name.removesuffix(f".{spec.kind}")


def test_topic_names_are_unique() -> None:
    counts = Counter(spec.name for spec in CATALOGUE)
    assert [name for name, n in counts.items() if n > 1] == []


def test_every_commands_topic_is_co_partitioned_with_its_events_topic() -> None:
    assert _of_kind("commands")
    for commands in _of_kind("commands"):
        events = topic(f"{_family(commands)}.events")
        assert events.kind == "events"
        assert events.partitions == commands.partitions, commands.name
        assert events.key == commands.key, commands.name


def test_commands_topics_carry_only_registered_command_types() -> None:
    for spec in _of_kind("commands"):
        assert spec.carries, spec.name
        for type_ in spec.carries:
            assert type_ in REGISTRY, type_
            assert issubclass(REGISTRY.model(type_), CommandPayload), type_


def test_events_topics_carry_only_registered_event_types() -> None:
    for spec in _of_kind("events"):
        assert spec.carries, spec.name
        for type_ in spec.carries:
            assert type_ in REGISTRY, type_
            assert issubclass(REGISTRY.model(type_), EventPayload), type_


def test_types_of_a_family_topic_belong_to_that_family() -> None:
    families = {family.name: family for family in FAMILIES}
    for spec in _of_kind("commands") + _of_kind("events"):
        for type_ in spec.carries:
            assert families[_family(spec)].owns_type(type_), (spec.name, type_)


def test_a_type_with_another_familys_prefix_does_not_belong() -> None:
    families = {family.name: family for family in FAMILIES}
    assert families["account"].owns_type("trading.order-filled")
    assert families["account"].owns_type("account.halted")
    assert not families["account"].owns_type("tier.created")
    assert not families["tier"].owns_type("trading.order-filled")


def test_replies_and_dead_letter_topics_carry_no_registered_payload_types() -> None:
    assert REPLIES.carries == ("command-reply",)
    for spec in _of_kind("replies") + _of_kind("dead-letters"):
        assert not any(type_ in REGISTRY for type_ in spec.carries), spec.name


def test_every_declared_dead_letter_topic_exists_and_is_a_dead_letter_topic() -> None:
    for spec in CATALOGUE:
        if spec.dead_letter is not None:
            assert topic(spec.dead_letter).kind == "dead-letters", spec.name


def test_every_commands_and_events_topic_has_a_dead_letter_topic() -> None:
    for spec in _of_kind("commands") + _of_kind("events"):
        assert spec.dead_letter is not None, spec.name


def test_dead_letter_topics_have_no_dead_letter_topic_of_their_own() -> None:
    for spec in _of_kind("dead-letters"):
        assert spec.dead_letter is None, spec.name


def test_every_registered_type_is_carried_by_exactly_one_topic() -> None:
    carried = Counter(type_ for spec in CATALOGUE for type_ in spec.carries)
    for model in REGISTRY.types():
        assert carried[model.TYPE] == 1, model.TYPE


def test_events_topics_are_kept_forever() -> None:
    for spec in _of_kind("events"):
        assert spec.retention_ms == -1, spec.name


def test_topic_when_name_is_unknown_raises_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        topic("nope")


def test_only_topics_whose_keys_carry_no_order_may_grow() -> None:
    for spec in CATALOGUE:
        if spec.kind in ("commands", "events", "snapshots", "stream"):
            assert not spec.may_grow, spec.name
    assert REPLIES.may_grow
    assert all(spec.may_grow for spec in _of_kind("dead-letters"))
