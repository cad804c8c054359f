"""Users and auth for real: HTTP -> user decider on Kafka -> users projection -> login."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import pytest_asyncio
import redis.asyncio as redis

from kernel.settings import Settings
from kernel.tokens import AccessTokens, signing_key
from tests.integration.helpers import asgi_client, assert_problem, bearer, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ADMIN = "00000000-0000-4000-8000-00000000ad01"


@pytest_asyncio.fixture(loop_scope="session")
async def client(settings: Settings, spawn: type) -> AsyncIterator[httpx.AsyncClient]:
    """The core API in-process, anonymous, with the user decider and users projection running."""
    from core.bootstrap import api as make_api

    decider = spawn("decider", "user").start()
    projection = spawn("projection", "users").start()
    await decider.ready()
    await projection.ready()
    async with asgi_client(make_api(settings)) as c:
        c.timeout = httpx.Timeout(30)
        yield c


async def register(client: httpx.AsyncClient, email: str, *, name: str = "Ada",
                   password: str = PASSWORD) -> dict[str, Any]:
    resp = await client.post("/auth/register", json={"email": email, "password": password,
                                                     "display_name": name})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def login(client: httpx.AsyncClient, email: str,
                password: str = PASSWORD) -> dict[str, Any]:
    resp = await client.post("/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_register_then_login_then_me(settings: Settings,
                                           client: httpx.AsyncClient) -> None:
    user = await register(client, "  Ada@Example.com ")
    assert user["email"] == "ada@example.com"
    assert user["role"] == "trader"
    tokens = await login(client, "ada@example.com")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == settings.access_token_ttl_s
    me = await client.get("/me", headers=auth(tokens))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == user["user_id"]
    assert "password_hash" not in me.json() and "$argon2id$" not in me.text
    renamed = await client.patch("/me", headers=auth(tokens), json={"display_name": "Ada L."})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["display_name"] == "Ada L."
    assert_problem(await client.patch("/me", headers=auth(tokens),
                                      json={"display_name": "Ada L."}),
                   409, "display-name-unchanged")
    assert_problem(await client.patch("/me", headers=auth(tokens), json={"role": "admin"}),
                   422, "validation-failed")
    # The unchanged name is refused at the edge (sealed names cannot be compared on the log).
    events = await read_topic(settings, "user.events")
    assert [e.type for e in events] == ["user.registered", "user.display-name-changed"]
    assert "password_hash" not in events[0].payload
    assert events[0].payload["email"].startswith("s1:")
    assert "ada@example.com" not in str(events) and "$argon2id$" not in str(events)


async def test_register_refuses_bad_input_with_problems_and_writes_nothing(
        settings: Settings, client: httpx.AsyncClient) -> None:
    def body(**change: Any) -> dict[str, Any]:
        return {"email": "bob@example.com", "password": PASSWORD, "display_name": "Bob",
                **change}

    weak = await client.post("/auth/register", json=body(password="short"))
    assert assert_problem(weak, 422, "password-rejected")["rules"] == [
        "password-too-short", "password-one-character-class"]
    long = await client.post("/auth/register", json=body(password="Aa1!" * 40))
    assert assert_problem(long, 422, "password-rejected")["rules"] == ["password-too-long"]
    common = await client.post("/auth/register", json=body(password="Password1234"))
    assert assert_problem(common, 422, "password-rejected")["rules"] == ["password-common"]
    for email in ("bob", "bob@localhost", "bob@@example.com"):
        assert_problem(await client.post("/auth/register", json=body(email=email)),
                       422, "email-invalid")
    # A role is never taken from the body, and unknown fields are refused, not ignored.
    assert_problem(await client.post("/auth/register", json=body(role="admin")),
                   422, "validation-failed")
    assert_problem(await client.post("/auth/register", json=body(display_name="x" * 500)),
                   422, "validation-failed")
    huge = {**body(), "display_name": "x" * (settings.max_body_bytes + 10)}
    too_large = await client.post("/auth/register", json=huge)
    assert_problem(too_large, 413, "body-too-large")
    assert (await read_topic(settings, "user.events")) == []

    await register(client, "bob@example.com")
    dup = await client.post("/auth/register", json=body(email="BOB@example.com"))
    assert_problem(dup, 409, "email-taken")
    events = await read_topic(settings, "user.events")
    assert [e.type for e in events] == ["user.registered"]


async def test_wrong_password_and_unknown_email_answer_identically(
        client: httpx.AsyncClient) -> None:
    await register(client, "cy@example.com")

    async def attempt(email: str, password: str) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        resp = await client.post("/auth/login", json={"email": email, "password": password})
        return resp, time.perf_counter() - started

    wrong = [await attempt("cy@example.com", "not the password 1") for _ in range(3)]
    unknown = [await attempt("nobody@example.com", "not the password 1") for _ in range(3)]
    bodies = set()
    for resp, _ in wrong + unknown:
        body = assert_problem(resp, 401, "invalid-credentials")
        bodies.add((body["title"], body["detail"]))
    assert len(bodies) == 1
    # Both spend one argon2 verification: the medians are of one order.
    w = statistics.median(t for _, t in wrong)
    u = statistics.median(t for _, t in unknown)
    assert 0.5 < w / u < 2.0, (w, u)
    assert u > 0.02  # an unknown email is not answered without hashing


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(
        client: httpx.AsyncClient) -> None:
    await register(client, "di@example.com")
    first = await login(client, "di@example.com")
    second = (await client.post("/auth/refresh",
                                json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/me", headers=auth(second))).status_code == 200
    third = (await client.post("/auth/refresh",
                               json={"refresh_token": second["refresh_token"]})).json()

    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reused, 401, "refresh-token-reused")
    # The family is dead: even the newest token fails now.
    newest = await client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert_problem(newest, 401, "refresh-token-revoked")
    for bad, slug in (("garbage", "refresh-token-malformed"),
                      (f"rt1.{uuid.uuid4().hex}.1.{'a' * 43}", "refresh-token-invalid")):
        assert_problem(await client.post("/auth/refresh", json={"refresh_token": bad}),
                       401, slug)
    # Another login is another family, unaffected.
    assert (await client.post("/auth/refresh", json={
        "refresh_token": (await login(client, "di@example.com"))["refresh_token"]})
    ).status_code == 200


async def test_logout_ends_the_session_and_everywhere_ends_every_token(
        client: httpx.AsyncClient) -> None:
    await register(client, "ed@example.com")
    one = await login(client, "ed@example.com")
    two = await login(client, "ed@example.com")
    out = await client.post("/auth/logout", json={"refresh_token": one["refresh_token"]})
    assert out.status_code == 204
    assert_problem(await client.post("/auth/refresh",
                                     json={"refresh_token": one["refresh_token"]}),
                   401, "refresh-token-revoked")
    assert (await client.get("/me", headers=auth(two))).status_code == 200

    out = await client.post("/auth/logout", json={"refresh_token": two["refresh_token"],
                                                  "everywhere": True})
    assert out.status_code == 204
    assert_problem(await client.get("/me", headers=auth(two)), 401, "token-revoked")
    assert_problem(await client.get("/me", headers=auth(one)), 401, "token-revoked")
    fresh = await login(client, "ed@example.com")
    assert (await client.get("/me", headers=auth(fresh))).status_code == 200


async def test_password_change_kills_old_access_and_refresh_tokens(
        settings: Settings, client: httpx.AsyncClient) -> None:
    await register(client, "fa@example.com")
    old = await login(client, "fa@example.com")
    new_password = "another long one 42"
    wrong = await client.post("/auth/password", headers=auth(old), json={
        "current_password": "not it at all 1", "new_password": new_password})
    assert_problem(wrong, 403, "current-password-wrong")
    weak = await client.post("/auth/password", headers=auth(old), json={
        "current_password": PASSWORD, "new_password": "weak"})
    assert_problem(weak, 422, "password-rejected")
    changed = await client.post("/auth/password", headers=auth(old), json={
        "current_password": PASSWORD, "new_password": new_password})
    assert changed.status_code == 204, changed.text

    assert_problem(await client.get("/me", headers=auth(old)), 401, "token-revoked")
    assert_problem(await client.post("/auth/refresh",
                                     json={"refresh_token": old["refresh_token"]}),
                   401, "refresh-token-revoked")
    assert_problem(await client.post("/auth/login", json={
        "email": "fa@example.com", "password": PASSWORD}), 401, "invalid-credentials")
    fresh = await login(client, "fa@example.com", new_password)
    assert (await client.get("/me", headers=auth(fresh))).status_code == 200
    events = await read_topic(settings, "user.events")
    assert [e.type for e in events] == ["user.registered", "user.password-changed"]


async def test_expired_forged_and_alg_none_tokens_are_401(
        settings: Settings, client: httpx.AsyncClient) -> None:
    uid = str(uuid.uuid4())
    tokens = AccessTokens(secret=settings.secret_key)
    expired = tokens.issue(subject=uid, role="admin", jti=uuid.uuid4(),
                           now=datetime.now(UTC) - timedelta(hours=1))
    now = int(time.time())
    claims = {"sub": uid, "role": "admin", "iat": now, "exp": now + 600, "jti": "x"}
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    none = jwt.encode(claims, None, algorithm="none")
    # The right key under another HMAC algorithm: refused for its alg alone.
    hs512 = jwt.encode(claims, signing_key(settings.secret_key) * 2, algorithm="HS512")
    for token, slug in ((expired, "token-expired"), (forged, "token-invalid"),
                        (none, "token-invalid"), (hs512, "token-invalid"),
                        ("not.a.jwt", "token-invalid")):
        resp = await client.get("/users", headers={"Authorization": f"Bearer {token}"})
        assert_problem(resp, 401, slug)
        assert resp.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/me"), 401, "unauthenticated")


async def test_traders_cannot_change_roles_nor_read_other_users(
        settings: Settings, client: httpx.AsyncClient) -> None:
    gil = await register(client, "gil@example.com")
    hal = await register(client, "hal@example.com")
    gil_tokens = await login(client, "gil@example.com")
    as_gil = auth(gil_tokens)
    assert (await client.get(f"/users/{gil['user_id']}", headers=as_gil)).status_code == 200
    assert_problem(await client.get(f"/users/{hal['user_id']}", headers=as_gil),
                   404, "user-not-found")
    assert_problem(await client.get(f"/users/{uuid.uuid4()}", headers=as_gil),
                   404, "user-not-found")
    assert_problem(await client.get("/users", headers=as_gil), 403, "forbidden")
    assert_problem(await client.post(f"/users/{hal['user_id']}/role", headers=as_gil,
                                     json={"role": "admin"}), 403, "forbidden")

    admin = bearer(settings, user_id=ADMIN)
    changed = await client.post(f"/users/{gil['user_id']}/role", headers=admin,
                                json={"role": "analyst"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "analyst"
    assert_problem(await client.post(f"/users/{gil['user_id']}/role", headers=admin,
                                     json={"role": "analyst"}), 409, "role-unchanged")
    assert_problem(await client.post(f"/users/{uuid.uuid4()}/role", headers=admin,
                                     json={"role": "analyst"}), 404, "user-not-found")
    # The old token carried the old role: it is refused now.
    assert_problem(await client.get("/me", headers=as_gil), 401, "token-revoked")
    role_events = [e for e in await read_topic(settings, "user.events")
                   if e.type == "user.role-changed"]
    assert len(role_events) == 1
    assert role_events[0].payload["changed_by"] == ADMIN
    assert role_events[0].payload["previous_role"] == "trader"

    page = (await client.get("/users", headers=admin, params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (await client.get("/users", headers=admin,
                             params={"cursor": page["next_cursor"]})).json()
    assert {u["email"] for u in page["items"] + rest["items"]} == {
        "gil@example.com", "hal@example.com"}
    analysts = (await client.get("/users", headers=admin, params={"role": "analyst"})).json()
    assert [u["email"] for u in analysts["items"]] == ["gil@example.com"]
    assert "$argon2id$" not in str(page) + str(rest)


async def test_api_key_create_use_and_revoke(settings: Settings,
                                             client: httpx.AsyncClient) -> None:
    ivy = await register(client, "ivy@example.com")
    as_trader = auth(await login(client, "ivy@example.com"))
    assert_problem(await client.post("/me/api-keys", headers=as_trader, json={
        "name": "nb", "scopes": ["reports:read"]}), 403, "forbidden")
    admin = bearer(settings, user_id=ADMIN)
    assert (await client.post(f"/users/{ivy['user_id']}/role", headers=admin,
                              json={"role": "analyst"})).status_code == 200
    as_analyst = auth(await login(client, "ivy@example.com"))
    assert_problem(await client.post("/me/api-keys", headers=as_analyst, json={
        "name": "nb", "scopes": ["admin"]}), 422, "scope-not-allowed")

    created = await client.post("/me/api-keys", headers=as_analyst,
                                json={"name": "notebook", "scopes": ["reports:read"]})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith(f"psk_{created.json()['key_id']}_")
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = await client.get("/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == ivy["user_id"]
    listed = (await client.get("/me/api-keys", headers=as_analyst)).json()["items"]
    assert [k["name"] for k in listed] == ["notebook"]
    assert key not in str(listed)
    # A key cannot mint keys.
    assert_problem(await client.post("/me/api-keys", headers={"X-API-Key": key}, json={
        "name": "x", "scopes": ["reports:read"]}), 403, "token-required")

    events = await read_topic(settings, "user.events")
    assert key not in str([e.payload for e in events])  # only the SHA-256 travels
    gone = await client.delete(f"/me/api-keys/{created.json()['key_id']}", headers=as_analyst)
    assert gone.status_code == 204, gone.text
    assert_problem(await client.get("/me", headers={"X-API-Key": key}), 401, "api-key-invalid")
    assert_problem(await client.delete("/me/api-keys/ffffffffffff", headers=as_analyst),
                   404, "api-key-not-found")


async def _redis_text(settings: Settings) -> str:
    """Every value in the namespace's Redis keys, as one string to search."""
    cache = redis.Redis.from_url(settings.cache_url)
    try:
        keys = [k async for k in cache.scan_iter(match=f"{settings.namespace}:*")]
        values = []
        for k in keys:
            if await cache.type(k) == b"string":
                values.append((await cache.get(k) or b"").decode("latin-1"))
        return "\n".join(values)
    finally:
        await cache.aclose()


async def test_secrets_are_never_kept_by_the_idempotency_store(
        settings: Settings, client: httpx.AsyncClient) -> None:
    await register(client, "kim@example.com")
    key = {"Idempotency-Key": "login-kim-1"}
    first = await client.post("/auth/login", headers=key,
                              json={"email": "kim@example.com", "password": PASSWORD})
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    again = await client.post("/auth/login", headers=key,
                              json={"email": "kim@example.com", "password": PASSWORD})
    # Not replayed from a store: a login runs again and issues its own tokens.
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert again.json()["refresh_token"] != first.json()["refresh_token"]

    admin = bearer(settings, user_id=ADMIN)
    kim = (await client.get("/users", headers=admin, params={"role": "trader"})).json()
    kim_id = next(u["user_id"] for u in kim["items"] if u["email"] == "kim@example.com")
    assert (await client.post(f"/users/{kim_id}/role", headers=admin,
                              json={"role": "analyst"})).status_code == 200
    as_analyst = auth(await login(client, "kim@example.com"))
    create = {**as_analyst, "Idempotency-Key": "key-kim-1"}
    body = {"name": "notebook", "scopes": ["reports:read"]}
    created = await client.post("/me/api-keys", headers=create, json=body)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    retried = await client.post("/me/api-keys", headers=create, json=body)
    # The first answer was the only place the key existed; a retry cannot show it again.
    problem = assert_problem(retried, 409, "api-key-already-created")
    assert problem["key_id"] == created.json()["key_id"]
    keys = (await client.get("/me/api-keys", headers=as_analyst)).json()["items"]
    assert len(keys) == 1

    stored = await _redis_text(settings)
    for secret in (first.json()["access_token"], first.json()["refresh_token"],
                   again.json()["refresh_token"], created.json()["key"]):
        assert secret not in stored
        assert base64.b64encode(secret.encode()).decode()[:40] not in stored


async def test_login_rate_limit_answers_429_with_retry_after(
        settings: Settings, client: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(settings.login_burst + 1):
        resp = await client.post("/auth/login", json={"email": "nobody@example.com",
                                                      "password": "whatever it is 1"})
        statuses.append(resp.status_code)
    assert statuses[:-1] == [401] * settings.login_burst
    limited = assert_problem(resp, 429, "rate-limited")
    assert int(resp.headers["retry-after"]) >= 1
    assert limited["retry_after"] == int(resp.headers["retry-after"])


async def test_concurrent_refreshes_with_one_token_one_wins_and_the_family_dies(
        settings: Settings) -> None:
    import redis.asyncio as redis

    from core.adapters.refresh_tokens import RefreshTokenStore
    from kernel.tokens import RefreshRejected, Rotated, TokenReused

    cache = redis.Redis.from_url(settings.cache_url)
    try:
        store = RefreshTokenStore(cache, namespace=settings.namespace, ttl=timedelta(hours=1))
        now = datetime.now(UTC)
        token = await store.start("u-1", now=now)
        outcomes = await asyncio.gather(*(store.refresh(token, now=now) for _ in range(4)))
        winners = [o for o in outcomes if isinstance(o, Rotated)]
        assert len(winners) == 1
        assert all(isinstance(o, TokenReused) for o in outcomes if o is not winners[0])
        after = await store.refresh(winners[0].token, now=now)
        assert after == RefreshRejected("revoked")
        late = await store.start("u-1", now=now)
        assert await store.refresh(late, now=now + timedelta(hours=2)) == RefreshRejected(
            "expired")
        ttl = await cache.ttl(f"{settings.namespace}:auth:rf:{late.split('.')[1]}")
        assert 3500 < ttl <= 3600
    finally:
        await cache.aclose()


async def test_rebuilt_users_projection_equals_the_live_one(
        settings: Settings, client: httpx.AsyncClient) -> None:
    from core.adapters.users_projection import UsersProjection
    from kernel.dlq import dead_letter_topic
    from kernel.projection import ProjectionRunner
    from schemas import default_registry

    admin = bearer(settings, user_id=ADMIN)
    jo = await register(client, "jo@example.com")
    await register(client, "kim@example.com")
    await client.post(f"/users/{jo['user_id']}/role", headers=admin, json={"role": "analyst"})
    as_jo = auth(await login(client, "jo@example.com"))
    key = (await client.post("/me/api-keys", headers=as_jo,
                             json={"name": "a", "scopes": ["market:read"]})).json()
    await client.post("/me/api-keys", headers=as_jo,
                      json={"name": "b", "scopes": ["reports:read"]})
    await client.delete(f"/me/api-keys/{key['key_id']}", headers=as_jo)

    live = await _dump_schema(settings)
    assert len(live[0]) == 2 and len(live[1]) == 2
    assert sum(k[-1] is not None for k in live[1]) == 1
    rebuilt_settings = settings.model_copy(update={"namespace": settings.namespace + "-rb"})
    # Rebuild from the same topics into a second schema, then compare row for row.
    runner = ProjectionRunner(rebuilt_settings, UsersProjection(), default_registry())
    runner.topics = [settings.topic(t) for t in runner.projection.topics]
    # Their dead letters go where the live ones do (the runner refuses to start without).
    runner.stage.dead_letter_topic = lambda topic: dead_letter_topic(settings, topic)
    await runner.start()
    try:
        await runner.run(until_caught_up=True)
    finally:
        await runner.stop()
    try:
        assert await _dump_schema(rebuilt_settings) == live
    finally:
        conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{rebuilt_settings.pg_schema}" CASCADE')
        await conn.close()


async def _dump_schema(settings: Settings) -> tuple[list[Any], list[Any]]:
    conn = await psycopg.AsyncConnection.connect(settings.database_url)
    try:
        await conn.execute(f'SET search_path TO "{settings.pg_schema}"')
        users = await (await conn.execute("SELECT * FROM users ORDER BY user_id")).fetchall()
        keys = await (await conn.execute("SELECT * FROM api_keys ORDER BY key_id")).fetchall()
        return users, keys
    finally:
        await conn.close()


async def test_create_admin_and_seed_from_the_cli_are_idempotent(
        settings: Settings, client: httpx.AsyncClient, spawn: type) -> None:
    import subprocess
    import sys

    from tests.conftest import process_env

    # `seed` also registers the instruments and tiers and grants the demo trader a tier.
    for family in ("instrument", "tier", "payment"):
        spawn("decider", family).start()

    def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "propstream", *argv], text=True,
                              capture_output=True, timeout=120,
                              env={**process_env(settings), **env})

    argv = ("users", "create-admin", "--email", "Root@Example.com", "--password",
            "root password 12345")
    first = await asyncio.to_thread(cli, *argv)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "accepted" in first.stdout
    again = await asyncio.to_thread(cli, *argv)
    assert "already created" in again.stdout, again.stdout + again.stderr
    weak = await asyncio.to_thread(cli, "users", "create-admin", "--email", "x@example.com",
                                   "--password", "weak")
    assert weak.returncode == 1 and "password-too-short" in weak.stdout

    tokens = await login(client, "root@example.com", "root password 12345")
    me = (await client.get("/me", headers=auth(tokens))).json()
    assert me["role"] == "admin"
    assert (await client.get("/users", headers=auth(tokens))).status_code == 200

    seeded = await asyncio.to_thread(cli, "seed", PROPSTREAM_ENV="dev",
                                     PROPSTREAM_SEED_TRADER_PASSWORD="trader secret 12345")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "dev admin password 1" in seeded.stdout  # the dev default is printed
    trader = await login(client, "trader@propstream.dev", "trader secret 12345")
    trader_me = (await client.get("/me", headers=auth(trader))).json()
    assert trader_me["role"] == "trader"
    admin = await login(client, "admin@propstream.dev", "dev admin password 1")
    assert (await client.get("/me", headers=auth(admin))).json()["role"] == "admin"
    events = await read_topic(settings, "user.events")
    assert [e.type for e in events].count("user.registered") == 3
    assert "demo grant" in seeded.stdout and "accepted" in seeded.stdout.split("demo grant")[1]
    grants = [e for e in await read_topic(settings, "payment.events")
              if e.type == "payment.purchase-granted"]
    assert [(g.payload["user_id"], g.payload["tier_id"], g.actor) for g in grants] == [
        (trader_me["user_id"], "starter-10k", "seed")]


async def test_a_v1_era_user_logs_in_with_the_legacy_hash_and_the_rehash_leaves_the_log(
        settings: Settings, client: httpx.AsyncClient) -> None:
    from core.domain.passwords import Argon2Params, Passwords
    from core.domain.users import user_id
    from schemas.envelope import CommandEnvelope
    from tests.integration.helpers import command_record, produce, wait_until

    weak = Passwords(Argon2Params(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1))
    old_hash = weak.hash(PASSWORD)
    # A registration as the version 1 API sent it: plaintext email and name, the hash inline.
    command = CommandEnvelope(
        command_id=uuid.uuid4(), type="user.register", version=1,
        aggregate_id=user_id("old@example.com"), issued_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(), payload={"email": "old@example.com",
                                              "password_hash": old_hash,
                                              "display_name": "Old", "role": "trader"})
    await produce(settings, "user.commands", [command_record(command)])

    async def registered() -> bool:
        resp = await client.post("/auth/login", json={"email": "old@example.com",
                                                      "password": PASSWORD})
        return resp.status_code == 200

    await wait_until(registered, timeout=30, what="the old-hash user to log in")

    async def rehashed() -> bool:
        types = [e.type for e in await read_topic(settings, "user.events")]
        return types == ["user.registered", "user.password-changed"]

    await wait_until(rehashed, timeout=30, what="user.password-changed after the login")
    events = await read_topic(settings, "user.events")
    assert events[0].payload["email"] == "p0:old@example.com"
    assert Passwords().needs_rehash(events[0].payload["legacy_password_hash"])
    assert events[1].version == 2 and events[1].payload["legacy_password_hash"] is None
    assert old_hash[:20] not in str(events[1].payload)
    # The same password still works against the new hash, now in the credential store.
    tokens = await login(client, "old@example.com")
    me = await client.get("/me", headers=auth(tokens))
    assert me.status_code == 200 and me.json()["email"] == "old@example.com"
