"""The COPY upsert of the read models, text and binary, on real PostgreSQL: the same rows
stored either way, awkward values included, and a row's Python value of the wrong type for a
binary column refused with the transaction left to roll back (nothing half-written)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from core.adapters.instruments_projection import COLUMNS, DDL, TABLE, Row
from kernel.pg import connect, copy_upsert
from kernel.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AT = datetime(2026, 12, 5, 6, 30, 0, 123_456, tzinfo=UTC)


def rows(n: int, *, version: int = 1) -> list[Row]:
    return [Row(f"X{i:03d}", "simulator", "crypto", Decimal("0.000000000001") * (i + 1),
                Decimal("12345678901234.5"), "USD",
                '{"sessions": [{"days": [0, 1], "open": "09:30:00", "close": "16:00:00"}], '
                '"timezone": "America/New_York"}',
                "tab\there, newline\nthere, back\\slash, ünïcode, \"quotes\"",
                "halted" if i % 2 else "active", None if i % 2 == 0 else "reason\r\n",
                version, AT, AT.replace(year=2099)) for i in range(n)]


async def stored(conn: psycopg.AsyncConnection, table: str) -> list[tuple[object, ...]]:
    cols = ", ".join(f"{c}::text" if c == "trading_hours" else c for c in COLUMNS)
    cur = await conn.execute(f"SELECT {cols} FROM {table} ORDER BY symbol")
    return list(await cur.fetchall())


async def test_binary_and_text_copy_store_the_same_rows(settings: Settings) -> None:
    conn = await connect(settings)
    try:
        await conn.execute(DDL)
        await conn.execute(DDL.replace("instruments", "instruments_text"))
        await conn.commit()
        for version in (1, 2):  # insert, then update every row through the conflict path
            batch = rows(50, version=version)
            await copy_upsert(conn, table="instruments", columns=COLUMNS, key=("symbol",),
                              rows=batch, binary=True)
            await copy_upsert(conn, table="instruments_text", columns=COLUMNS,
                              key=("symbol",), rows=batch)
            await conn.commit()
        binary, text = await stored(conn, "instruments"), await stored(conn, "instruments_text")
        assert binary == text
        assert len(binary) == 50 and {r[10] for r in binary} == {2}
        # And what RowTable reads back is the row that was written.
        loaded = await TABLE.load(conn, {"X000", "X001"})
        assert loaded["X001"] == rows(2, version=2)[1]
    finally:
        await conn.close()


async def test_a_value_of_the_wrong_type_is_refused_and_nothing_is_written(
    settings: Settings,
) -> None:
    conn = await connect(settings)
    try:
        await conn.execute(DDL)
        await conn.commit()
        bad = rows(3)
        bad[1] = bad[1]._replace(version=str(uuid.uuid4()))  # a str for a bigint column
        with pytest.raises((psycopg.Error, TypeError, ValueError)):
            await copy_upsert(conn, table="instruments", columns=COLUMNS, key=("symbol",),
                              rows=bad, binary=True)
        await conn.rollback()
        assert await stored(conn, "instruments") == []
    finally:
        await conn.close()
