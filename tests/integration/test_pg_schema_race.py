"""Many processes creating the same schema and read-model tables at once must all succeed.

`propstream up` and the tests start every projection at the same moment on an empty database.
PostgreSQL's `CREATE … IF NOT EXISTS` is not safe against a concurrent creator: two sessions may
both find the name free and the second fails on the catalogue's unique index
(`pg_type_typname_nsp_index`, `pg_namespace_nspname_index`). A CI run failed exactly so; here the
race is provoked on purpose, with real PostgreSQL connections.
"""

from __future__ import annotations

import asyncio

import pytest

from core.adapters.users_projection import UsersProjection
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from schemas import default_registry

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CREATORS = 12
ROUNDS = 6


async def test_concurrent_schema_and_table_creation_never_fails(
    settings: Settings, namespace: str,
) -> None:
    registry = default_registry()
    for round_no in range(ROUNDS):
        # A fresh PostgreSQL schema each round, so every round races on empty catalogues.
        fresh = settings.model_copy(update={"namespace": f"{namespace}r{round_no}"})
        start = asyncio.Event()

        async def create(fresh: Settings = fresh, start: asyncio.Event = start) -> None:
            await start.wait()
            conn = await connect(fresh)
            try:
                runner = ProjectionRunner(fresh, UsersProjection(), registry)
                await runner.ensure_tables(conn)
            finally:
                await conn.close()

        tasks = [asyncio.create_task(create()) for _ in range(CREATORS)]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], f"round {round_no}: {failures[:3]}"

        conn = await connect(fresh)
        try:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "ORDER BY table_name", (fresh.pg_schema,))
            tables = [name for (name,) in await cur.fetchall()]
            await conn.execute(f'DROP SCHEMA "{fresh.pg_schema}" CASCADE')
            await conn.commit()
        finally:
            await conn.close()
        assert set(UsersProjection.tables) | {"projection_offsets"} <= set(tables)
