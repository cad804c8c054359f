"""Purchases become assessments and funded accounts through real processes on real Kafka,
PostgreSQL and Redis: the assessment and account deciders, the policy and both projections.

One platform (one namespace) serves the whole module; each test uses its own purchases and
users, so the tests do not see each other's records unless they list everything (admins).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from kernel.kafka import apply_topics
from kernel.settings import Settings
from schemas.account import account_id_for
from schemas.assessment import assessment_id_for
from schemas.codec import encode
from schemas.identity import Role
from schemas.topics import CATALOGUE
from tests.conftest import _namespaces
from tests.integration.helpers import (
    PlatformProcess,
    asgi_client,
    assert_problem,
    bearer,
    produce,
    read_topic,
    wait_until,
)
from tests.support.purchases import (
    completed,
    granted,
    payment_event,
    payment_record,
    refunded,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PROCESSES = (("decider", "assessment"), ("decider", "account"), ("policy", "assessment"),
             ("projection", "assessments"), ("projection", "accounts"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(base_settings: Settings,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """Every process of the purchase -> assessment -> account flow, in one fresh namespace."""
    ns = base_settings.model_copy(update={"namespace": "t" + uuid.uuid4().hex[:10],
                                          "command_timeout_ms": 30000})
    await apply_topics(ns, CATALOGUE)
    _namespaces.append(ns)
    logs: Path = tmp_path_factory.mktemp("assessments")
    procs = [PlatformProcess(ns, *argv, log_dir=logs).start() for argv in PROCESSES]
    try:
        for proc in procs:
            await proc.ready()
        yield ns
    finally:
        for proc in procs:
            proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def admin(platform: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(platform), headers=bearer(platform)) as client:
        yield client


async def fetch(client: httpx.AsyncClient, path: str, settings: Settings, *,
                user: uuid.UUID, role: Role = "trader") -> httpx.Response:
    """GET `path` as `user` with `role` instead of the client's admin."""
    return await client.get(path, headers=bearer(settings, role=role, user_id=str(user)))


async def visible(client: httpx.AsyncClient, path: str, *,
                  until: Any = None, timeout: float = 60) -> dict[str, Any]:
    """The body of `path` once it answers 200 (and `until(body)` holds)."""
    found: dict[str, Any] = {}

    async def ready() -> bool:
        resp = await client.get(path)
        if resp.status_code != 200:
            return False
        found.update(resp.json())
        return until is None or bool(until(found))

    await wait_until(ready, timeout=timeout, what=path)
    return found


async def events_of(settings: Settings, topic: str, aggregate_id: str) -> list[str]:
    return [e.type for e in await read_topic(settings, topic) if e.aggregate_id == aggregate_id]


async def test_completed_purchase_creates_an_assessment_and_a_funded_account(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    await produce(platform, "payment.events",
                  [payment_record(purchase, completed(user, account_size=50_000))])
    assessment_id = assessment_id_for(str(purchase))
    account_id = account_id_for(assessment_id)

    assessment = await visible(admin, f"/assessments/{assessment_id}")
    assert (assessment["purchase_id"], assessment["user_id"]) == (str(purchase), str(user))
    assert (assessment["status"], assessment["phase"], assessment["source"]) == (
        "active", "challenge", "stripe")
    assert assessment["account_id"] == account_id
    assert assessment["rules"] == assessment["terms"]["phases"][0]["rules"]
    account = await visible(admin, f"/accounts/{account_id}")
    assert (Decimal(account["starting_balance"]), Decimal(account["balance"]),
            account["currency"]) == (Decimal(50_000), Decimal(50_000), "USD")
    assert (account["status"], account["user_id"]) == ("open", str(user))
    own = await fetch(admin, f"/accounts/{account_id}", platform, user=user)
    assert own.status_code == 200 and own.json() == account


async def test_the_same_event_twice_gives_one_assessment_and_one_account(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    record = payment_record(purchase, completed(user))
    await produce(platform, "payment.events", [record, record])
    # And a grant of the same purchase (another event, so another command): refused.
    await produce(platform, "payment.events", [payment_record(purchase, granted(user),
                                                              sequence=2)])
    assessment_id = assessment_id_for(str(purchase))
    account_id = account_id_for(assessment_id)

    async def decided() -> bool:
        return "assessment.command-rejected" in await events_of(
            platform, "assessment.events", assessment_id)

    await wait_until(decided, timeout=60, what="the grant's create to be decided")
    await visible(admin, f"/accounts/{account_id}")
    events = await read_topic(platform, "assessment.events")
    mine = [e for e in events if e.aggregate_id == assessment_id]
    assert [e.type for e in mine] == ["assessment.created", "assessment.command-rejected"]
    assert mine[1].payload["reason"] == "assessment-exists"
    assert await events_of(platform, "account.events", account_id) == ["account.opened"]
    body = (await admin.get("/assessments", params={"user_id": str(user)})).json()
    assert [a["assessment_id"] for a in body["items"]] == [assessment_id]


async def test_refund_after_completion_cancels_and_closes_the_account(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    await produce(platform, "payment.events", [
        payment_record(purchase, completed(user)),
        payment_record(purchase, refunded(user, "evt_refund_1"), sequence=2)])
    assessment_id = assessment_id_for(str(purchase))
    account_id = account_id_for(assessment_id)

    cancelled = await visible(admin, f"/assessments/{assessment_id}",
                              until=lambda b: b["status"] == "cancelled")
    assert cancelled["cancel_reason"] == "refunded"
    closed = await visible(admin, f"/accounts/{account_id}",
                           until=lambda b: b["status"] == "closed")
    assert closed["closed_at"] is not None and "refunded" in closed["close_reason"]
    assert await events_of(platform, "account.events", account_id) == [
        "account.opened", "account.closed"]


async def test_refund_before_completion_means_no_assessment_is_ever_created(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    await produce(platform, "payment.events", [
        payment_record(purchase, refunded(user, "evt_early"), sequence=1),
        payment_record(purchase, completed(user), sequence=2)])
    assessment_id = assessment_id_for(str(purchase))
    account_id = account_id_for(assessment_id)

    async def refused() -> bool:
        return "assessment.command-rejected" in await events_of(
            platform, "assessment.events", assessment_id)

    await wait_until(refused, timeout=60, what="the late create to be refused")
    mine = [e for e in await read_topic(platform, "assessment.events")
            if e.aggregate_id == assessment_id]
    assert [e.type for e in mine] == ["assessment.cancelled", "assessment.command-rejected"]
    assert mine[1].payload["reason"] == "assessment-cancelled"

    async def close_refused() -> bool:
        return await events_of(platform, "account.events", account_id) == [
            "account.command-rejected"]

    await wait_until(close_refused, timeout=30, what="the close of a never-opened account")
    assert_problem(await admin.get(f"/assessments/{assessment_id}"), 404,
                   "assessment-not-found")
    assert_problem(await admin.get(f"/accounts/{account_id}"), 404, "account-not-found")
    listed = (await admin.get("/assessments", params={"user_id": str(user)})).json()
    assert listed["items"] == []


async def test_a_grant_creates_an_assessment_with_source_grant(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    await produce(platform, "payment.events", [payment_record(purchase, granted(user))])
    assessment_id = assessment_id_for(str(purchase))
    assessment = await visible(admin, f"/assessments/{assessment_id}")
    assert assessment["source"] == "grant"
    account = await visible(admin, f"/accounts/{account_id_for(assessment_id)}")
    assert Decimal(account["starting_balance"]) == Decimal(25_000)


async def test_two_traders_each_see_only_their_own(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    purchases = {alice: uuid.uuid4(), bob: uuid.uuid4()}
    await produce(platform, "payment.events",
                  [payment_record(p, completed(u)) for u, p in purchases.items()])
    ids = {u: assessment_id_for(str(p)) for u, p in purchases.items()}
    for assessment_id in ids.values():
        await visible(admin, f"/accounts/{account_id_for(assessment_id)}")

    for me, other in ((alice, bob), (bob, alice)):
        mine, theirs = ids[me], ids[other]
        listed = (await fetch(admin, "/assessments", platform, user=me)).json()
        assert [a["assessment_id"] for a in listed["items"]] == [mine]
        accounts = (await fetch(admin, "/accounts", platform, user=me)).json()
        assert [a["account_id"] for a in accounts["items"]] == [account_id_for(mine)]
        assert (await fetch(admin, f"/assessments/{mine}", platform, user=me)).status_code == 200
        assert_problem(await fetch(admin, f"/assessments/{theirs}", platform, user=me), 404,
                       "assessment-not-found")
        assert_problem(await fetch(admin, f"/accounts/{account_id_for(theirs)}", platform,
                                   user=me), 404, "account-not-found")
        # Naming the other trader in the filter shows nothing either.
        peek = await fetch(admin, f"/assessments?user_id={other}", platform, user=me)
        assert peek.json()["items"] == []

    for path in ("/assessments", f"/assessments/{ids[alice]}", "/accounts",
                 f"/accounts/{account_id_for(ids[alice])}"):
        assert_problem(await fetch(admin, path, platform, user=uuid.uuid4(), role="analyst"),
                       403, "forbidden")
        assert_problem(await admin.get(path, headers={"Authorization": "Bearer"}), 401,
                       "token-invalid")
    both = (await admin.get("/assessments", params={"user_id": str(bob)})).json()
    assert [a["user_id"] for a in both["items"]] == [str(bob)]


async def test_pages_follow_the_cursor_and_a_bad_cursor_is_a_problem(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    purchases = [uuid.uuid4() for _ in range(5)]
    await produce(platform, "payment.events",
                  [payment_record(p, completed(user)) for p in purchases])
    for p in purchases:
        await visible(admin, f"/assessments/{assessment_id_for(str(p))}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "user_id": str(user)}
        if cursor:
            params["cursor"] = cursor
        page = (await admin.get("/assessments", params=params)).json()
        seen += [a["assessment_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(assessment_id_for(str(p)) for p in purchases)
    assert len(seen) == len(set(seen))
    assert_problem(await admin.get("/assessments", params={"cursor": "not-a-cursor"}), 400,
                   "invalid-cursor")
    assert_problem(await admin.get("/assessments/not-a-uuid"), 422, "validation-failed")
    assert_problem(await admin.get("/accounts", params={"limit": 0}), 422, "validation-failed")


async def test_poison_payment_events_are_dead_lettered_and_the_policy_goes_on(
    platform: Settings, admin: httpx.AsyncClient
) -> None:
    user, purchase = uuid.uuid4(), uuid.uuid4()
    not_a_purchase = payment_event(purchase, completed(user)).model_copy(
        update={"aggregate_id": "purchase-without-uuid"})
    await produce(platform, "payment.events", [
        (b"junk", b"\x00 not an envelope"),
        (b"purchase-without-uuid", encode(not_a_purchase)),
        payment_record(purchase, completed(user))])
    await visible(admin, f"/accounts/{account_id_for(assessment_id_for(str(purchase)))}")
    letters = await read_topic(platform, "payment.events.dlq", raw=True)
    keys = {m.key for m in letters}
    assert {b"junk", b"purchase-without-uuid"} <= keys
    assert all(dict(m.headers)["x-consumer"] == b"assessment-policy" for m in letters)
