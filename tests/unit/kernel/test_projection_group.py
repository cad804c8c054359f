"""A projection group: its members' tables, one apply in turn, rows of all in one statement,
their caches kept together; members that read other topics or decode their own way refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from kernel.projection_group import ProjectionGroup
from kernel.projection_small import RowChanges

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Cache:
    def __init__(self) -> None:
        self.complete = False
        self.calls: list[str] = []

    async def start(self, conn: Any) -> None:
        self.calls.append("start")

    def reset(self) -> None:
        self.calls.append("reset")

    def commit(self) -> None:
        self.calls.append("commit")


class Member:
    def __init__(self, name: str, topics: tuple[str, ...] = ("account.events",), *,
                 fast: object = None, with_changes: bool = True) -> None:
        self.name, self.topics, self.tables = name, topics, (f"{name}_rows",)
        self.applied: list[Sequence[Any]] = []
        self.cache = Cache()
        if fast is not None:
            self.fast = fast
        if with_changes:
            self.changes = self._changes

    def ddl(self) -> Sequence[str]:
        return [f"CREATE TABLE {self.name}_rows ()"]

    async def apply(self, conn: Any, events: Sequence[Any]) -> None:
        self.applied.append(events)

    async def _changes(self, conn: Any, events: Sequence[Any]) -> list[RowChanges]:
        return [RowChanges(f"{self.name}_rows", ("k",), ("k",), [[e] for e in events], [])]


async def test_members_are_applied_in_turn_and_their_rows_go_out_together() -> None:
    a, b = Member("a"), Member("b")
    group = ProjectionGroup("g", [a, b])
    assert group.tables == ("a_rows", "b_rows")
    assert list(group.ddl()) == ["CREATE TABLE a_rows ()", "CREATE TABLE b_rows ()"]
    await group.apply(None, [1, 2])  # type: ignore[arg-type]
    assert a.applied == [[1, 2]] and b.applied == [[1, 2]]
    assert group.changes is not None
    rows = await group.changes(None, [7])
    assert [r.table for r in rows] == ["a_rows", "b_rows"]


async def test_the_caches_are_started_committed_and_forgotten_together() -> None:
    a, b = Member("a"), Member("b")
    group = ProjectionGroup("g", [a, b])
    assert group.cache is not None
    await group.cache.start(None)  # type: ignore[arg-type]
    group.cache.commit()
    group.cache.reset()
    assert a.cache.calls == b.cache.calls == ["start", "commit", "reset"]
    group.cache.complete = True
    assert a.cache.complete and b.cache.complete and group.cache.complete
    b.cache.complete = False
    assert not group.cache.complete


async def test_a_member_without_changes_takes_the_group_off_the_one_statement_path() -> None:
    assert ProjectionGroup("g", [Member("a"), Member("b", with_changes=False)]).changes is None


@pytest.mark.parametrize("odd", [Member("b", ("other.events",)), Member("b", fast=object())])
async def test_members_reading_other_topics_or_decoding_their_own_way_are_refused(
        odd: Member) -> None:
    with pytest.raises(ValueError, match="group 'g'"):
        ProjectionGroup("g", [Member("a"), odd])
    with pytest.raises(ValueError, match="no members"):
        ProjectionGroup("g", [])
