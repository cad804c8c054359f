"""kernel.auth without Redis: credentials in, a Principal or the reason out, and the gates."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kernel.auth import (
    SCOPE_KEY,
    Authenticator,
    AuthMiddleware,
    CurrentPrincipal,
    Principal,
    StoredApiKey,
    access,
    credential_of,
    public,
)
from kernel.problems import Problem, problem_response
from kernel.settings import Settings
from kernel.tokens import AccessTokens, generate_api_key, new_secret
from schemas.identity import Role

SETTINGS = Settings(secret_key=SecretStr("unit-test-secret"))
TOKENS = AccessTokens(secret=SETTINGS.secret_key)
USER = "7f9c1d3e-0000-4000-8000-000000000001"


def token(role: Role = "trader", *, now: datetime | None = None, sub: str = USER) -> str:
    return TOKENS.issue(subject=sub, role=role, now=now or datetime.now(UTC), jti=uuid.uuid4())


class Keys:
    """An in-memory ApiKeyStore: a fake is fine for pure code under test."""

    def __init__(self) -> None:
        self.records: dict[str, StoredApiKey] = {}

    def add(self, scopes: frozenset[str], role: Role = "analyst",
            key_id: str = "0123456789ab") -> str:
        key, record = generate_api_key(key_id=key_id, secret=new_secret(), owner=USER,
                                       scopes=scopes)
        self.records[key_id] = StoredApiKey(key=record, owner_role=role)
        return key

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        return self.records.get(key_id)


def scope_with(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": list(headers)}


def test_credential_of_reads_bearer_or_api_key_header() -> None:
    assert credential_of(scope_with((b"authorization", b"Bearer abc"))) == "abc"
    assert credential_of(scope_with((b"Authorization", b"bearer  abc "))) == "abc"
    assert credential_of(scope_with((b"x-api-key", b"psk_x"))) == "psk_x"
    assert credential_of(scope_with((b"authorization", b"Basic dXNlcjpw"))) == ""
    assert credential_of(scope_with()) is None


@pytest.mark.asyncio
async def test_a_valid_token_is_the_user_with_the_role_s_scopes() -> None:
    principal = await Authenticator(SETTINGS, redis=None).authenticate(token("analyst"))
    assert isinstance(principal, Principal)
    assert (principal.user_id, principal.role, principal.via) == (USER, "analyst", "token")
    assert "reports:read" in principal.scopes
    assert principal.identity == f"user:{USER}"


@pytest.mark.asyncio
async def test_expired_forged_and_alg_none_tokens_are_refused_with_their_reason() -> None:
    auth = Authenticator(SETTINGS, redis=None)
    old = token(now=datetime.now(UTC) - timedelta(hours=1))
    assert await auth.authenticate(old) == "expired"
    forged = AccessTokens(secret=SecretStr("another-secret")).issue(
        subject=USER, role="admin", now=datetime.now(UTC), jti=uuid.uuid4())
    assert await auth.authenticate(forged) == "bad-signature"
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps(
        {"sub": USER, "role": "admin", "iat": 1, "exp": 9999999999, "jti": "x"}).encode()
    ).rstrip(b"=").decode()
    assert await auth.authenticate(f"{header}.{claims}.") == "algorithm-not-allowed"
    assert await auth.authenticate("not-a-token") == "malformed"


@pytest.mark.asyncio
async def test_api_key_is_its_owner_narrowed_to_the_owner_s_current_role() -> None:
    keys = Keys()
    key = keys.add(frozenset({"reports:read", "admin"}), role="analyst")
    principal = await Authenticator(SETTINGS, redis=None, api_keys=keys).authenticate(key)
    assert isinstance(principal, Principal)
    assert (principal.user_id, principal.role, principal.via) == (USER, "analyst", "api-key")
    # "admin" was granted to the key, but its owner is an analyst now.
    assert principal.scopes == frozenset({"reports:read"})


@pytest.mark.asyncio
async def test_api_key_with_a_wrong_secret_unknown_id_or_revoked_is_refused() -> None:
    keys = Keys()
    key = keys.add(frozenset({"reports:read"}))
    auth = Authenticator(SETTINGS, redis=None, api_keys=keys)
    assert await auth.authenticate(key[:-4] + "AAAA") == "bad-secret"
    assert await auth.authenticate("psk_ffffffffffff_" + "a" * 43) == "unknown-key"
    assert await auth.authenticate("psk_nothex_secret") == "malformed"
    stored = keys.records["0123456789ab"]
    keys.records["0123456789ab"] = StoredApiKey(
        key=stored.key.__class__(**{**stored.key.__dict__, "revoked": True}),
        owner_role=stored.owner_role)
    assert await auth.authenticate(key) == "unknown-key"


@pytest.mark.asyncio
async def test_a_failing_key_store_is_unavailable_not_a_crash() -> None:
    class Broken:
        async def lookup(self, key_id: str) -> StoredApiKey | None:
            raise OSError("connection refused")

    auth = Authenticator(SETTINGS, redis=None, api_keys=Broken())
    assert await auth.authenticate("psk_0123456789ab_" + "a" * 43) == "unavailable"


def gated_app() -> TestClient:
    app = FastAPI()

    @app.exception_handler(Problem)
    async def on_problem(request, exc):  # type: ignore[no-untyped-def]
        return problem_response(request, exc)

    @app.get("/mine")
    async def mine(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user": principal.user_id}

    @app.get("/admin", dependencies=[access("admin", scope="admin")])
    async def admin() -> dict[str, str]:
        return {"ok": "admin"}

    @app.get("/reports", dependencies=[access("analyst", "admin", scope="reports:read")])
    async def reports() -> dict[str, str]:
        return {"ok": "reports"}

    @app.get("/keys", dependencies=[access("analyst", "admin", token_only=True)])
    async def keys() -> dict[str, str]:
        return {"ok": "keys"}

    @app.get("/open", dependencies=[public()])
    async def open_() -> dict[str, str]:
        return {"ok": "open"}

    app.add_middleware(AuthMiddleware, authenticator=Authenticator(SETTINGS, redis=None,
                                                                   api_keys=KEYS))
    return TestClient(app)


KEYS = Keys()
ADMIN_REPORTS_KEY = KEYS.add(frozenset({"reports:read"}), role="admin", key_id="aaaaaaaaaaaa")


def test_routes_answer_401_without_a_credential_and_name_the_reason() -> None:
    client = gated_app()
    missing = client.get("/mine")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["type"] == "urn:propstream:problem:unauthenticated"
    expired = client.get("/mine", headers={
        "Authorization": f"Bearer {token(now=datetime.now(UTC) - timedelta(hours=1))}"})
    assert expired.status_code == 401
    assert expired.json()["type"] == "urn:propstream:problem:token-expired"
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    ok = client.get("/mine", headers={"Authorization": f"Bearer {token()}"})
    assert ok.json() == {"user": USER}


@pytest.mark.parametrize(("role", "path", "status"), [
    ("trader", "/admin", 403), ("analyst", "/admin", 403), ("admin", "/admin", 200),
    ("trader", "/reports", 403), ("analyst", "/reports", 200), ("trader", "/keys", 403),
    ("admin", "/keys", 200),
])
def test_roles_and_scopes_gate_routes(role: Role, path: str, status: int) -> None:
    resp = gated_app().get(path, headers={"Authorization": f"Bearer {token(role)}"})
    assert resp.status_code == status, resp.text


def test_the_middleware_leaves_its_outcome_in_the_scope() -> None:
    app = FastAPI()
    seen: list[object] = []

    @app.get("/peek")
    async def peek(request: Request) -> None:
        seen.append(request.scope[SCOPE_KEY])

    app.add_middleware(AuthMiddleware, authenticator=Authenticator(SETTINGS, redis=None))
    client = TestClient(app)
    client.get("/peek", headers={"Authorization": "Bearer garbage"})
    client.get("/peek")
    assert seen == ["malformed", "missing"]


def test_access_refuses_an_unknown_role_at_definition() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        access("superuser")  # type: ignore[arg-type]


def test_access_refuses_a_scope_the_role_can_never_hold_at_definition() -> None:
    with pytest.raises(ValueError, match="can never hold"):
        access("trader", scope="admin")


@pytest.mark.parametrize(("path", "status", "problem"), [
    ("/admin", 403, "scope-missing"), ("/reports", 200, None), ("/keys", 403, "token-required"),
    ("/open", 200, None),
])
def test_an_admin_key_with_a_narrow_scope_gets_only_what_the_scope_grants(
        path: str, status: int, problem: str | None) -> None:
    resp = gated_app().get(path, headers={"X-API-Key": ADMIN_REPORTS_KEY})
    assert resp.status_code == status, resp.text
    if problem is not None:
        assert resp.json()["type"] == f"urn:propstream:problem:{problem}"


def test_a_public_route_answers_anonymous_callers_and_bad_credentials_alike() -> None:
    client = gated_app()
    assert client.get("/open").status_code == 200
    assert client.get("/open", headers={"Authorization": "Bearer garbage"}).status_code == 200
    assert client.get("/admin").status_code == 401
