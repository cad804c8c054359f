"""Issue 9 point 2 on the real platform: no secret and no personal value is on any topic or in
any table in plaintext, and forgetting a user makes their email and name unreadable
everywhere at once while a full replay still gives the same balances."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from schemas.topics import CATALOGUE
from tests.conftest import process_env
from tests.integration.helpers import read_topic, read_topics
from tests.security.conftest import PASSWORD, Platform, Who


def _every_record(platform: Platform) -> list[tuple[str, bytes]]:
    async def read() -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        topics = await read_topics(platform.settings, [spec.name for spec in CATALOGUE],
                                   raw=True)
        for name, messages in topics.items():
            for m in messages:
                headers = b"".join(k.encode() + (v or b"") for k, v in (m.headers or ()))
                out.append((name, (m.key or b"") + b"\0" + (m.value or b"") + headers))
        return out

    return asyncio.run(read())


def _every_row(platform: Platform) -> list[tuple[str, str]]:
    schema = platform.settings.pg_schema
    with psycopg.connect(platform.settings.database_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'", (schema,))]
        assert {"users", "credentials", "user_keys", "accounts"} <= set(tables)
        rows: list[tuple[str, str]] = []
        for table in tables:
            query = sql.SQL("SELECT CAST(t AS text) FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table))
            rows += [(table, r[0]) for r in conn.execute(query)]
        return rows


def _query(platform: Platform, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(platform.settings.database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(platform.settings.pg_schema)))
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def _assert_nowhere(platform: Platform, *secrets: str, hashes: bool, seen: str) -> None:
    """No secret in any record of any topic or any row of any table. `seen` (the user's id)
    must be in some record: proof that the records the secrets were looked for were read."""
    records = _every_record(platform)
    assert any(seen.encode() in record for _, record in records), f"no record of {seen}"
    for topic, record in records:
        for secret in secrets:
            assert secret.encode() not in record, f"{secret!r} in plaintext on {topic}"
        assert b"$argon2id$" not in record, f"a password hash on {topic}"
    for table, row in _every_row(platform):
        for secret in secrets:
            assert secret not in row, f"{secret!r} in plaintext in table {table}"
        if hashes:  # the credential store keeps them sealed too
            assert "$argon2id$" not in row, f"a password hash in table {table}"


def _wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _replay(platform: Platform, projection: str) -> None:
    # Stop the live projection first: a replay must not race the process that owns the tables.
    live = platform.processes[f"projection-{projection}"]
    live.stop()
    try:
        done = subprocess.run([sys.executable, "-m", "propstream", "replay", projection],
                              env=process_env(platform.settings), capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        live.start()


def test_forgotten_user_is_unreadable_everywhere_and_balances_survive_a_full_replay(
        platform: Platform, people: dict[str, Who]) -> None:
    from core.bootstrap import seed_tiers

    asyncio.run(seed_tiers(platform.settings))  # idempotent: the grant needs a tier
    admin = people["admin"]
    tag = uuid.uuid4().hex[:10]
    email, name = f"shred-{tag}@example.com", f"Shreddable {tag}"
    with platform.client() as c:
        r = c.post("/auth/register", json={"email": email, "password": PASSWORD,
                                           "display_name": name})
    assert r.status_code in (201, 202), r.text
    uid = r.json().get("user_id") or r.headers["Location"].rsplit("/", 1)[1]
    tokens = _wait(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        platform.client().post("/auth/login", json={"email": email, "password": PASSWORD})),
        "the new user to log in")
    with platform.client(admin) as c:
        r = c.post("/admin/grants", json={"user_id": uid, "tier_id": "starter-10k",
                                          "reason": "crypto-shredding test"})
    assert r.status_code in (201, 202), r.text
    accounts = "SELECT * FROM accounts WHERE user_id = %s ORDER BY account_id"
    before = _wait(lambda: _query(platform, accounts, uid), "the granted account to open")
    with platform.client(admin) as c:
        shown = c.get(f"/users/{uid}").json()
    assert (shown["email"], shown["display_name"]) == (email, name)

    # Sealed on the log and in the read model; hashes only in the credential store.
    _assert_nowhere(platform, email, name, hashes=True, seen=uid)

    with platform.client(admin) as c:
        forgot = c.post(f"/users/{uid}/forget")
        again = c.post(f"/users/{uid}/forget")
    assert forgot.status_code == 200, forgot.text
    assert again.status_code == 200, again.text
    assert forgot.json()["email"] is None and forgot.json()["forgotten_at"] is not None
    with platform.client() as c:
        login = c.post("/auth/login", json={"email": email, "password": PASSWORD})
        refresh = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert login.status_code == 401, login.text
    assert refresh.status_code == 401, refresh.text
    with platform.client(admin) as c:
        shown = c.get(f"/users/{uid}").json()
    assert (shown["email"], shown["display_name"]) == (None, None)
    for table in ("user_keys", "credentials", "api_key_secrets"):
        assert _query(platform, f"SELECT 1 FROM {table} WHERE user_id = %s", uid) == []
    types = [e.type for e in asyncio.run(read_topic(platform.settings, "user.events"))
             if e.aggregate_id == uid]
    assert types[-1] == "user.forgotten"

    _replay(platform, "users")
    _replay(platform, "accounts")
    assert _query(platform, accounts, uid) == before
    with platform.client(admin) as c:
        shown = _wait(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            c.get(f"/users/{uid}")), "the replayed user row")
    assert (shown["email"], shown["display_name"]) == (None, None)
    assert shown["forgotten_at"] is not None
    _assert_nowhere(platform, email, name, hashes=True, seen=uid)


def test_forget_is_refused_to_non_admins_and_unknown_ids_with_nothing_on_the_log(
        platform: Platform, people: dict[str, Who]) -> None:
    trader, admin = people["trader"], people["admin"]
    assert trader.user_id is not None
    before = len(asyncio.run(read_topic(platform.settings, "user.events")))
    for who, target, status in [
        (people["anonymous"], trader.user_id, 401),
        (trader, trader.user_id, 403),
        (people["analyst"], trader.user_id, 403),
        (admin, str(uuid.uuid4()), 404),
    ]:
        with platform.client(who) as c:
            r = c.post(f"/users/{target}/forget")
        assert r.status_code == status, (who.name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    with platform.client(trader) as c:
        me = c.get("/me")
    assert me.status_code == 200 and me.json()["email"] == trader.email
    assert len(asyncio.run(read_topic(platform.settings, "user.events"))) == before


def test_cli_forget_erases_the_user_and_a_second_run_says_already_forgotten(
        platform: Platform, people: dict[str, Who]) -> None:
    victim = platform.user("trader", name="cli-forget")
    assert victim.user_id is not None and victim.email is not None

    def forget() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "propstream", "users", "forget",
                               victim.user_id or ""], env=process_env(platform.settings),
                              capture_output=True, text=True, timeout=120)

    first = forget()
    assert first.returncode == 0 and "accepted" in first.stdout, first.stdout + first.stderr
    again = forget()
    assert again.returncode == 0 and "already forgotten" in again.stdout, again.stdout
    with platform.client() as c:
        login = c.post("/auth/login", json={"email": victim.email, "password": PASSWORD})
    assert login.status_code == 401
    with platform.client(victim) as c:
        assert c.get("/me").status_code == 401  # the sessions ended with the key
    with platform.client(people["admin"]) as c:
        shown = _wait(lambda: (lambda r: r.json() if r.json()["forgotten_at"] else None)(
            c.get(f"/users/{victim.user_id}")), "the forgotten row")
    assert (shown["email"], shown["display_name"]) == (None, None)
    bad = subprocess.run([sys.executable, "-m", "propstream", "users", "forget", "nobody"],
                         env=process_env(platform.settings), capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "not a user id" in bad.stdout + bad.stderr


def test_an_api_key_name_is_shown_to_its_owner_and_sealed_everywhere_else(
        platform: Platform) -> None:
    owner = platform.user("analyst", name="keyname")
    label = f"Ada's laptop {uuid.uuid4().hex[:10]}"  # free text: may well be personal
    with platform.client(owner) as c:
        created = c.post("/me/api-keys", json={"name": label, "scopes": ["reports:read"]})
        assert created.status_code == 201, created.text
        listed = c.get("/me/api-keys").json()["items"]
    assert [k["name"] for k in listed] == [label]
    assert owner.user_id is not None
    _assert_nowhere(platform, label, hashes=True, seen=owner.user_id)
