"""Several read models of the same topics as one projection: one consumer, one decode, one
write.

Each projection process fetches, decodes and writes on its own. Four read models of
`account.events` (orders, fills, positions, equity) meant four consumers woken by every
engine transaction, four pydantic decodes of every event and four PostgreSQL statements per
batch. With the account engine at 100 orders/s, running those four beside the three that a
position needs raised the order's p50 from 15.5 to 61.3 ms and the machine from 74 % to 94 %
busy (`bench.order_round_trip --projections`, docs/decisions/0012-projection-groups.md).

`ProjectionGroup(name, members)` is a `kernel.projection.Projection` made of members that read
the same topics: its tables are all of theirs, a batch is applied to each member in turn in
the same transaction, and a small batch's rows of every member go out with the offsets in
one statement (`kernel.projection_small`). Its offsets are stored under the group's name, so
the group is replayed, leased and dropped as one read model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from kernel.projection import Event, Projection
from kernel.projection_small import RowChanges


class GroupCache:
    """The members' row caches, kept together: the store commits or forgets a batch of all."""

    def __init__(self, caches: Sequence[Any]) -> None:
        self.caches = tuple(caches)

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.caches)

    @complete.setter
    def complete(self, value: bool) -> None:
        for c in self.caches:
            c.complete = value

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        for c in self.caches:
            await c.start(conn)

    def reset(self) -> None:
        for c in self.caches:
            c.reset()

    def commit(self) -> None:
        for c in self.caches:
            c.commit()


class ProjectionGroup:
    """Members folded together; see the module docstring."""

    def __init__(self, name: str, members: Sequence[Projection]) -> None:
        if not members:
            raise ValueError(f"projection group {name!r} has no members")
        topics = members[0].topics
        for m in members:
            if m.topics != topics:
                raise ValueError(f"projection group {name!r}: {m.name} reads {m.topics}, "
                                 f"{members[0].name} reads {topics}; a group reads one set")
            if getattr(m, "fast", None) is not None:
                raise ValueError(f"projection group {name!r}: {m.name} has a fast decoder; "
                                 "a group decodes once, with pydantic, for all its members")
        self.name = name
        self.members = tuple(members)
        self.topics = topics
        self.tables = tuple(t for m in members for t in m.tables)
        caches = [getattr(m, "cache", None) for m in members]
        # The store reads these two with getattr: None where a member lacks one.
        self.cache = GroupCache(caches) if all(c is not None for c in caches) else None
        self.changes = self._changes if all(
            getattr(m, "changes", None) is not None for m in members) else None

    def ddl(self) -> Sequence[str]:
        return [statement for m in self.members for statement in m.ddl()]

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Event]) -> None:
        for m in self.members:
            await m.apply(conn, events)

    async def _changes(self, conn: psycopg.AsyncConnection,
                       events: Sequence[Event]) -> list[RowChanges]:
        out: list[RowChanges] = []
        for m in self.members:
            out += await m.changes(conn, events)  # type: ignore[attr-defined]
        return out


__all__ = ["GroupCache", "ProjectionGroup"]
