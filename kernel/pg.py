"""PostgreSQL helpers: connections bound to the namespace's schema."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg import pq, sql
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from kernel.settings import Settings


async def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=autocommit)
    await ensure_schema(conn, settings)
    return conn


# PostgreSQL's `CREATE … IF NOT EXISTS` is not safe against a concurrent creator: two sessions
# may both find a name free, and the later one fails on the catalogue's unique index. Every
# process of the platform starts at once on an empty database, so all schema changes take this
# one database-wide lock (transaction-scoped: released by the commit, or by a crash).
DDL_LOCK_KEY = 0x7072_6F70_7374_726D  # "propstrm"

DDL = LiteralString | sql.SQL | sql.Composed


async def apply_ddl(conn: psycopg.AsyncConnection, statements: Iterable[DDL]) -> None:
    """Run schema statements in one transaction, under the platform's DDL lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        for statement in statements:
            await conn.execute(statement)


async def ensure_schema(conn: psycopg.AsyncConnection, settings: Settings) -> None:
    schema = settings.pg_schema
    if schema != "public":
        await apply_ddl(conn, [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))])
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    if not conn.autocommit:
        await conn.commit()


def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    schema = settings.pg_schema

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    return AsyncConnectionPool(settings.database_url, min_size=min_size, max_size=max_size,
                               configure=configure, open=False)


# The column types of a table, by connection (a connection's search path fixes the schema).
_COLUMN_TYPES: weakref.WeakKeyDictionary[psycopg.AsyncConnection, dict[str, dict[str, int]]] = (
    weakref.WeakKeyDictionary())


async def column_types(conn: psycopg.AsyncConnection, table: str,
                       columns: Sequence[str]) -> list[int]:
    """The type OIDs of `columns` of `table` (found on the search path), looked up once per
    connection: what a binary COPY needs to send each value in its column's own format."""
    known = _COLUMN_TYPES.setdefault(conn, {})
    types = known.get(table)
    if types is None:
        cur = await conn.execute(
            "SELECT attname, atttypid::int FROM pg_attribute "
            "WHERE attrelid = to_regclass(quote_ident(%s)) AND attnum > 0 AND NOT attisdropped",
            (table,))
        types = known[table] = {name: oid for name, oid in await cur.fetchall()}
    try:
        return [types[c] for c in columns]
    except KeyError as exc:
        raise LookupError(f"table {table!r} has no column {exc.args[0]!r}") from None


class JsonTextBinaryDumper(Dumper):
    """jsonb in binary COPY from JSON *text* (a read model keeps its jsonb columns as the text
    PostgreSQL stored, `RowTable.as_text`): the version byte and the text, not re-encoded.
    psycopg's own jsonb dumper would `json.dumps` the text into a JSON string."""

    format = pq.Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


async def copy_upsert(conn: psycopg.AsyncConnection, *, table: str, columns: Sequence[str],
                      key: Sequence[str], rows: Iterable[Sequence[object]],
                      binary: bool = False) -> None:
    """Upsert rows COPY-fast: COPY into a per-transaction stage table, then one
    INSERT … ON CONFLICT (key) DO UPDATE of every other column.

    `binary` sends the rows in PostgreSQL's binary COPY format (each value dumped for its
    column's type, looked up once): the server parses no text. The rows' Python values must
    then match the column types exactly (a `str` for a `uuid` column is refused), and a
    jsonb value is its JSON text."""
    stage = sql.Identifier(f"{table}_stage")
    target = sql.Identifier(table)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    await conn.execute(sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    ).format(stage, target))
    await _copy(conn, stage, table, columns, rows, binary=binary)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns if c not in key)
    await conn.execute(sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}"
    ).format(target, cols, cols, stage,
             sql.SQL(", ").join(sql.Identifier(c) for c in key), updates))


async def copy_into(conn: psycopg.AsyncConnection, *, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[object]], binary: bool = False) -> None:
    """COPY rows straight into `table` (new rows only: a key already there fails the COPY
    and, with it, the transaction). `binary` as for `copy_upsert`."""
    await _copy(conn, sql.Identifier(table), table, columns, rows, binary=binary)


async def _copy(conn: psycopg.AsyncConnection, into: sql.Identifier, table: str,
                columns: Sequence[str], rows: Iterable[Sequence[object]], *,
                binary: bool) -> None:
    """COPY `rows` into `into`, whose columns are those of `table` (the types, for binary)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    types = await column_types(conn, table, columns) if binary else None
    fmt = sql.SQL(" (FORMAT BINARY)") if binary else sql.SQL("")
    async with conn.cursor() as cur, cur.copy(
        sql.SQL("COPY {} ({}) FROM STDIN{}").format(into, cols, fmt)
    ) as copy:
        if types is not None:
            cur.adapters.register_dumper(None, JsonTextBinaryDumper)  # this cursor only
            copy.set_types(types)
        for row in rows:
            await copy.write_row(row)


async def page_by_key(conn: psycopg.AsyncConnection, *, table: str, columns: LiteralString,
                      key: str, after: str | None, limit: int,
                      equal: Mapping[str, object | None] | None = None,
                      ) -> list[dict[str, Any]]:
    """One page of a read model in `key` order, strictly after the cursor `after`: the query
    behind every keyset-paginated list. `equal` filters columns whose value is not None."""
    where: list[sql.Composable] = []
    params: list[object] = []
    for column, value in (equal or {}).items():
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if after is not None:
        where.append(sql.SQL("{} > %s").format(sql.Identifier(key)))
        params.append(after)
    clause = sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT %s").format(
        sql.SQL(columns), sql.Identifier(table), clause, sql.Identifier(key))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [*params, limit])
        return await cur.fetchall()
