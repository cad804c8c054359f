"""The trading read models on real Kafka and PostgreSQL: account.* and trading.* events made
by the real trading domain go onto `account.events`; the five projections fold them live (in
small batches, the one-statement path); the read routes answer them, paged, to their owner,
an admin, nobody else; and `propstream replay`'s rebuild equals the live tables row for row.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import httpx
import pytest
from psycopg import sql

from core.domain.trading import cancel, halt
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from kernel.rebuild import rebuild
from kernel.settings import Settings
from propstream.processes import projection_runner
from schemas.account import account_id_for
from schemas.trading import CancelOrder, HaltAccount, order_id_for
from tests.integration.helpers import asgi_client, assert_problem, bearer, produce
from tests.support.trading_log import NS, AccountLog, D

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# Projection (as `propstream replay` names it) -> its tables (a group: kernel.projection_group).
PROJECTIONS = {"accounts": ("accounts", "trading_orders", "trading_fills", "trading_positions",
                            "account_equity")}
# Each table's rows in a stable order (every column, numbers as PostgreSQL keeps them).
TABLES = {
    "accounts": "account_id", "trading_orders": "order_id", "trading_fills": "fill_id",
    "trading_positions": "position_key", "account_equity": "point_key",
}
MINUTE = 60_000_000_000


def busy_account(user: uuid.UUID) -> AccountLog:
    """An account that does a bit of everything: fills, a partial, a cancel, a refusal and a
    duplicate, an OCO exit, a closed and a reopened position, marks over several minutes."""
    log = AccountLog(account_id_for(str(uuid.uuid4())), user_id=user)
    log.place(client_order_id="m-1", quantity=D("2"))
    log.place(client_order_id="l-1", type="limit", limit_price=D("59000"), quantity=D("3"))
    log.place(client_order_id="l-1", quantity=D("1"))  # duplicate: refused, row untouched
    log.place(client_order_id="bad", quantity=D("0.0005"))  # off the lot: refused
    log.place(client_order_id="rest", type="limit", limit_price=D("50000"))
    log.record(cancel(log.state, CancelOrder(order_id=order_id_for(log.account_id, "rest")),
                      now_ns=NS))
    log.quote("58990", "58999", size="1", now_ns=NS + 1)  # l-1 partially filled
    base = (NS // MINUTE) * MINUTE
    for i in range(12):  # a mark every 20 s over 4 minutes
        log.mark(str(59000 + i), str(59001 + i), now_ns=base + MINUTE + i * 20_000_000_000)
    log.quote("58900", "58950", now_ns=base + 5 * MINUTE)  # l-1 filled
    log.place(client_order_id="out", side="sell", quantity=D("5"),
              now_ns=base + 5 * MINUTE)  # closes the long
    log.place(client_order_id="short", side="sell", quantity=D("1"), stop_loss=D("61000"),
              take_profit=D("58000"), now_ns=base + 5 * MINUTE)
    log.mark("59000", "59001", now_ns=base + 6 * MINUTE)
    log.record(halt(log.state, HaltAccount(reason="daily loss")))
    return log


async def table_rows(settings: Settings, table: str) -> list[tuple[object, ...]]:
    conn = await connect(settings)
    try:
        cur = await conn.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(
            sql.Identifier(table), sql.Identifier(TABLES[table])))
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def fold_live(settings: Settings, name: str) -> None:
    """Run projection `name` as it runs live (small batches) until it has read the log."""
    runner = projection_runner(settings, name)
    runner.max_batch = 5
    await runner.start()
    try:
        assert isinstance(runner, ProjectionRunner)
        while True:
            await runner.run(timeout=0.5)
            if await runner.lag() == 0:
                break
    finally:
        await runner.stop()


async def pages(client: httpx.AsyncClient, path: str, headers: dict[str, str], *,
                limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list, following `next_cursor`."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(path, params=query, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_trading_read_models_live_routes_and_rebuild(settings: Settings) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    mine, theirs = busy_account(owner), busy_account(other)
    records = mine.records() + theirs.records()
    await produce(settings, "account.events", records)

    for name in PROJECTIONS:
        await fold_live(settings, name)
    live = {t: await table_rows(settings, t) for t in TABLES}
    assert len(live["accounts"]) == 2
    assert len(live["trading_orders"]) == 2 * 8  # six client ids (one refused) and two OCO legs

    from core.bootstrap import api as make_api

    me = bearer(settings, role="trader", user_id=str(owner))
    admin = bearer(settings, role="admin")
    analyst = bearer(settings, role="analyst", user_id=str(owner))
    acct = mine.account_id
    async with asgi_client(make_api(settings)) as client:
        # Orders: every one, newest first, the same through pages of 3 as in one page.
        everything = await pages(client, f"/accounts/{acct}/orders", me, limit=200)
        assert len(everything) == 8
        assert [o["created_at"] for o in everything] == sorted(
            (o["created_at"] for o in everything), reverse=True)
        assert await pages(client, f"/accounts/{acct}/orders", me, limit=3) == everything
        by_client = {(o["client_order_id"], o["role"]): o for o in everything}
        l1 = by_client["l-1", "entry"]
        assert (l1["status"], D(l1["filled_quantity"]), D(l1["average_fill_price"])) == (
            "filled", D("3"), D("59000"))
        assert by_client["bad", None]["status"] == "rejected"
        assert by_client["bad", None]["reason"] == "off-lot"
        assert by_client["rest", "entry"]["status"] == "cancelled"
        open_orders = await pages(client, f"/accounts/{acct}/orders", me, limit=50, open="true")
        assert {(o["role"], o["status"]) for o in open_orders} == {
            ("stop-loss", "working"), ("take-profit", "working")}
        cancelled = await pages(client, f"/accounts/{acct}/orders", me, limit=50,
                                status="cancelled")
        assert [o["client_order_id"] for o in cancelled] == ["rest"]
        one = await client.get(f"/accounts/{acct}/orders/{l1['order_id']}", headers=me)
        assert one.status_code == 200 and one.json() == l1
        missing = await client.get(f"/accounts/{acct}/orders/{uuid.uuid4()}", headers=me)
        assert_problem(missing, 404, "order-not-found")

        # Fills and positions.
        fills = await pages(client, f"/accounts/{acct}/fills", me, limit=2)
        live_fills = [r for r in live["trading_fills"] if str(r[2]) == acct]
        assert len(fills) == len(live_fills) >= 5
        assert [f["filled_at"] for f in fills] == sorted((f["filled_at"] for f in fills),
                                                         reverse=True)
        positions = await pages(client, f"/accounts/{acct}/positions", me, limit=10)
        assert [(p["instrument"], p["status"], D(p["quantity"])) for p in positions] == [
            ("BTC-USD", "open", D("-1"))]
        assert await pages(client, f"/accounts/{acct}/positions", me, limit=10,
                           status="closed") == []
        assert len(await pages(client, f"/accounts/{acct}/positions", me, limit=1,
                               status="all")) == 1

        # Equity: a point per minute (the minute's last mark), coarser buckets folded.
        minute = await pages(client, f"/accounts/{acct}/equity", me, limit=2)
        assert len(minute) == 5  # minutes 1-4 of the marks, 6 (5 has none)
        assert [p["bucket"] for p in minute] == sorted((p["bucket"] for p in minute),
                                                       reverse=True)
        five = await pages(client, f"/accounts/{acct}/equity", me, limit=10, resolution="5m")
        assert 1 <= len(five) <= 2 and five[0]["equity"] == minute[0]["equity"]
        first, last = minute[-1]["bucket"], minute[0]["bucket"]
        ranged = await pages(client, f"/accounts/{acct}/equity", me, limit=10,
                             **{"from": first, "to": last})
        assert ranged == minute[1:]

        # The account row's new columns.
        account = (await client.get(f"/accounts/{acct}", headers=me)).json()
        assert account["halted"] is True and account["halt_reason"] == "daily loss"
        assert D(account["balance"]) == mine.state.balance
        assert account["equity"] is not None and account["marked_at"] is not None

        # Who: someone else's account is 404 like an unknown one; admins see any; analysts 403.
        their_l1 = order_id_for(theirs.account_id, "l-1")
        for path in ("orders", "fills", "positions", "equity", f"orders/{their_l1}"):
            theirs_resp = await client.get(f"/accounts/{theirs.account_id}/{path}", headers=me)
            assert_problem(theirs_resp, 404, "account-not-found")
            unknown = await client.get(f"/accounts/{uuid.uuid4()}/{path}", headers=me)
            assert_problem(unknown, 404, "account-not-found")
            assert theirs_resp.json()["title"] == unknown.json()["title"]
            seen = await client.get(f"/accounts/{theirs.account_id}/{path}", headers=admin)
            assert seen.status_code == 200, seen.text
            mine_path = path.replace(str(their_l1), l1["order_id"])
            assert_problem(await client.get(f"/accounts/{acct}/{mine_path}", headers=analyst),
                           403, "forbidden")

        # Bad parameters: problem+json 422.
        for query in ({"cursor": "!!!"}, {"cursor": "eyJ4IjoxfQ"}, {"status": "lost"},
                      {"limit": 0}):
            bad = await client.get(f"/accounts/{acct}/orders", params=query, headers=me)
            assert bad.status_code == 422, (query, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
        for query in ({"resolution": "2m"}, {"from": last, "to": first},
                      {"from": "2026-01-01T00:00:00"}, {"cursor": "e30"}):
            bad = await client.get(f"/accounts/{acct}/equity", params=query, headers=me)
            assert bad.status_code == 422, (query, bad.text)

    # The rebuild (`propstream replay <name>`'s path) equals the live tables row for row.
    for name, tables in PROJECTIONS.items():
        report = await rebuild(functools.partial(projection_runner, settings, name), workers=1)
        assert report.events == len(records)
        for table in tables:
            assert await table_rows(settings, table) == live[table], (name, table)
    # Every row belongs to one account, so a rebuild by one worker per partition is the same.
    report = await rebuild(functools.partial(projection_runner, settings, "accounts"),
                           workers=3)
    assert len(report.workers) == 3
    for table in PROJECTIONS["accounts"]:
        assert await table_rows(settings, table) == live[table], table
