"""The one statement of a small projection batch: its text by shape, its parameters in order."""

from __future__ import annotations

from kernel.log import TopicPartition
from kernel.projection_small import RowChanges, SmallBatchStatement

TP = TopicPartition("ns.instrument.events", 2)


def changes(new: list[tuple[object, ...]],
            existing: list[tuple[object, ...]]) -> list[RowChanges]:
    return [RowChanges("t", ("k", "a", "b"), ("k",), new, existing)]


def test_new_rows_are_inserted_existing_ones_upserted_and_the_offsets_stored_in_one_statement(
) -> None:
    built = SmallBatchStatement("proj").build(
        None, changes([("n", 1, 2)], [("e", 3, 4), ("f", 5, 6)]), {TP: 9})  # type: ignore[arg-type]
    assert built is not None
    query, params = built
    assert query.decode() == (
        'WITH "n0" AS (INSERT INTO "t" ("k", "a", "b") VALUES ($1, $2, $3)), '
        '"u0" AS (INSERT INTO "t" ("k", "a", "b") VALUES ($4, $5, $6), ($7, $8, $9) '
        'ON CONFLICT ("k") DO UPDATE SET "a" = EXCLUDED."a", "b" = EXCLUDED."b") '
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
        "VALUES ($10, $11, $12, $13) ON CONFLICT (projection, topic, partition) "
        "DO UPDATE SET next_offset = EXCLUDED.next_offset")
    assert params == ["n", 1, 2, "e", 3, 4, "f", 5, 6, "proj", "ns.instrument.events", 2, 9]


def test_a_batch_that_changes_no_row_stores_its_offsets_alone() -> None:
    built = SmallBatchStatement("proj").build(None, changes([], []), {TP: 3})  # type: ignore[arg-type]
    assert built is not None
    query, params = built
    assert query.startswith(b"INSERT INTO projection_offsets") and b"WITH" not in query
    assert params == ["proj", "ns.instrument.events", 2, 3]


def test_nothing_to_write_is_no_statement() -> None:
    assert SmallBatchStatement("proj").build(None, changes([], []), {}) is None  # type: ignore[arg-type]


def test_rows_without_offsets_still_make_a_statement() -> None:
    built = SmallBatchStatement("proj").build(None, changes([], [("e", 1, 2)]), {})  # type: ignore[arg-type]
    assert built is not None
    assert built[0].endswith(b" SELECT 1") and built[1] == ["e", 1, 2]


def test_a_shape_is_composed_once() -> None:
    statement = SmallBatchStatement("proj")
    first = statement.build(None, changes([("a", 1, 2)], []), {TP: 1})  # type: ignore[arg-type]
    second = statement.build(None, changes([("b", 3, 4)], []), {TP: 2})  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert first[0] is second[0] and len(statement.known) == 1
    assert second[1] == ["b", 3, 4, "proj", "ns.instrument.events", 2, 2]
