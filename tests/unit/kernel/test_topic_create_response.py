"""What a CreateTopics answer means to `apply_topics`: aiokafka hands back per-topic error codes
instead of raising, so a refusal must not pass for a creation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kernel.exceptions import InfraError
from kernel.kafka import TOPIC_ALREADY_EXISTS, _created_or_raced


def _answer(*errors: tuple[object, ...]) -> SimpleNamespace:
    return SimpleNamespace(topic_errors=list(errors))


def test_created_topics_are_no_race() -> None:
    assert _created_or_raced(_answer(("a", 0, None), ("b", 0))) == set()


def test_a_topic_already_there_is_a_race_not_a_creation() -> None:
    assert _created_or_raced(_answer(("a", 0, None), ("b", TOPIC_ALREADY_EXISTS, "exists"))) \
        == {"b"}


def test_any_other_error_is_an_infra_error_naming_topic_code_and_message() -> None:
    with pytest.raises(InfraError) as caught:
        _created_or_raced(_answer(("a", 0, None), ("b", 38, "replication factor 3 > 1 broker")))
    assert "b: error 38 (replication factor 3 > 1 broker)" in str(caught.value)
    assert "a:" not in str(caught.value)
