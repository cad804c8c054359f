"""Who is calling, proven: bearer access tokens and API keys, for every service's API.

`AuthMiddleware` authenticates a request once, before the idempotency and rate-limit layers,
so an Idempotency-Key and a rate-limit bucket belong to a proven user, never to a name the
client typed. It never refuses a request itself: a route that needs a caller declares it
with `access(...)`, which answers 401 with the exact reason (through `authenticated`) or 403;
public routes ignore credentials altogether.

Every operation declares who may call it, once, next to its handler: `access(roles, scope=...)`
for callers with a role (and, for an API key, the scope it must carry), or `public()`. The
rule is also written into the operation's OpenAPI (`x-access`), and a unit test fails for an
operation without exactly one declaration.

Credentials:

* `Authorization: Bearer <JWT>`: an access token issued by the core service (kernel.tokens);
  refused when its `iat` is before the user's not-before mark (set on logout everywhere,
  password change and role change), so a stolen token dies with the session it came from;
* `Authorization: Bearer psk_<id>_<secret>` or `X-API-Key: psk_...`: an API key, looked up
  by id in the app's `ApiKeyStore` and checked against its SHA-256; its owner's current role
  applies and its scopes narrow what it may do (`access`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, get_args

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPBearer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from kernel.lookup_guard import LookupGuard
from kernel.observability import get_logger
from kernel.problems import Problem
from kernel.settings import Settings
from kernel.tokens import (
    AccessClaims,
    AccessTokenRejected,
    AccessTokens,
    ApiKey,
    ApiKeyAccepted,
    parse_api_key_id,
    verify_api_key,
)
from schemas.identity import Role

log = get_logger(__name__)

SCOPE_KEY = "propstream.auth"
API_KEY_PREFIX = "psk_"
ROLES: tuple[Role, ...] = get_args(Role)

# What each role may do with an API key's scope; a token carries all of its role's scopes.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    "trader": frozenset({"account:read", "account:trade"}),
    "analyst": frozenset({"reports:read", "market:read"}),
    "admin": frozenset({"reports:read", "market:read", "admin"}),
}

AuthProblem = Literal["missing", "malformed", "algorithm-not-allowed", "bad-signature",
                      "claims-invalid", "expired", "issued-in-future", "revoked",
                      "unknown-key", "bad-secret", "unavailable", "throttled"]

_PROBLEM_TEXT: dict[str, tuple[str, str]] = {
    "missing": ("unauthenticated", "send `Authorization: Bearer <access token or API key>`"),
    "expired": ("token-expired", "the access token has expired; refresh it"),
    "revoked": ("token-revoked", "this session was signed out; log in again"),
    "unknown-key": ("api-key-invalid", "no such API key, or it was revoked"),
    "bad-secret": ("api-key-invalid", "no such API key, or it was revoked"),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user, through a token or one of their API keys."""

    user_id: str
    role: Role
    via: Literal["token", "api-key"]
    scopes: frozenset[str]
    key_id: str | None = None
    issued_at: datetime | None = None

    @property
    def identity(self) -> str:
        """What idempotency keys and rate-limit buckets are scoped by."""
        return f"user:{self.user_id}"


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    key: ApiKey
    owner_role: Role


class ApiKeyStore(Protocol):
    """Where a service finds API keys by id (core keeps them in its read model)."""

    async def lookup(self, key_id: str) -> StoredApiKey | None: ...


def not_before_key(namespace: str, user_id: str) -> str:
    return f"{namespace or '-'}:auth:not-before:{user_id}"


def role_pending_key(namespace: str, user_id: str) -> str:
    """Set while a role change of `user_id` is undecided (core.identity)."""
    return f"{namespace or '-'}:auth:role-pending:{user_id}"


def role_decided_key(namespace: str, user_id: str) -> str:
    """`<aggregate version> <role>` of the newest decided role change (core.identity)."""
    return f"{namespace or '-'}:auth:role:{user_id}"


async def mark_not_before(redis: Redis, namespace: str, user_id: str, *, at: datetime,
                          ttl_s: int) -> None:
    """Refuse every access token of `user_id` issued before `at` (for the token lifetime)."""
    await redis.set(not_before_key(namespace, user_id), str(int(at.timestamp())), ex=ttl_s)


class Authenticator:
    """Turns request credentials into a Principal or the reason they are refused."""

    def __init__(self, settings: Settings, *, redis: Redis | None,
                 api_keys: ApiKeyStore | None = None) -> None:
        self.settings = settings
        self.tokens = AccessTokens(secret=settings.secret_key)
        self.redis = redis
        self.api_keys = api_keys
        self.lookups = LookupGuard(rate=settings.api_key_miss_rate_per_s,
                                   burst=settings.api_key_miss_burst)

    async def authenticate(self, credential: str, *,
                           ip: str = "unknown") -> Principal | AuthProblem:
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key(credential, ip)
        verdict = self.tokens.verify(credential, now=datetime.now(UTC))
        if isinstance(verdict, AccessTokenRejected):
            return verdict.reason
        return await self._check_not_before(verdict)

    async def _check_not_before(self, claims: AccessClaims) -> Principal | AuthProblem:
        if self.redis is not None:
            try:
                mark = await self.redis.get(not_before_key(self.settings.namespace, claims.sub))
            except (RedisError, OSError) as exc:
                # Fail closed: a revoked session must not come back while Redis is away.
                log.warning("token revocation check unavailable", error=str(exc))
                return "unavailable"
            if mark is not None and int(claims.iat.timestamp()) < int(mark):
                return "revoked"
        return Principal(user_id=claims.sub, role=claims.role, via="token",
                         scopes=ROLE_SCOPES[claims.role], issued_at=claims.iat)

    async def _api_key(self, presented: str, ip: str) -> Principal | AuthProblem:
        key_id = parse_api_key_id(presented)
        if key_id is None:
            return "malformed"
        if self.api_keys is None:
            return "unknown-key"
        # Before any query: an address sending unknown keys is refused without one.
        if not self.lookups.may_look_up(ip, key_id):
            return "throttled"
        try:
            stored = await self.api_keys.lookup(key_id)
        except Exception as exc:
            log.warning("API key lookup failed", error=str(exc))
            return "unavailable"
        if stored is None:
            self.lookups.failed(ip, key_id, unknown=True)
            return "unknown-key"
        # Scope checks come later, per route (access()).
        verdict = verify_api_key(stored.key, presented)
        if not isinstance(verdict, ApiKeyAccepted):
            self.lookups.failed(ip, key_id, unknown=False)
            return "unknown-key" if verdict.reason in ("wrong-key", "revoked") else "bad-secret"
        role = await self._owner_role(verdict.owner, stored.owner_role)
        if role is None:
            return "unavailable"
        # A key never grants more than its owner's role allows today.
        scopes = verdict.scopes & ROLE_SCOPES[role]
        return Principal(user_id=verdict.owner, role=role, via="api-key",
                         scopes=scopes, key_id=verdict.key_id)

    async def _owner_role(self, owner: str, read_model_role: Role) -> Role | None:
        """The owner's role now: a decided change the read model does not show yet wins;
        None while a change is undecided (or Redis is away): the key waits, as tokens do."""
        if self.redis is None:
            return read_model_role
        try:
            pending, decided = await self.redis.mget(
                role_pending_key(self.settings.namespace, owner),
                role_decided_key(self.settings.namespace, owner))
        except (RedisError, OSError) as exc:
            log.warning("role check unavailable", error=str(exc))
            return None
        if pending is not None:
            return None
        if decided is None:
            return read_model_role
        text = decided.decode() if isinstance(decided, bytes) else str(decided)
        role = text.partition(" ")[2]
        return role if role in ROLES else read_model_role


def credential_of(scope: Scope) -> str | None:
    """The bearer credential or API key of an ASGI request, if any was sent."""
    for name, value in scope.get("headers", ()):
        lname = name.lower()
        if lname == b"authorization":
            text = value.decode("latin-1").strip()
            kind, _, rest = text.partition(" ")
            return rest.strip() if kind.lower() == "bearer" else ""
        if lname == b"x-api-key":
            key: str = value.decode("latin-1").strip()
            return key
    return None


class AuthMiddleware:
    """Authenticate once per request; the outcome waits in the scope for the dependencies."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            credential = credential_of(scope)
            outcome: Principal | AuthProblem
            if credential is None:
                outcome = "missing"
            elif not credential:
                outcome = "malformed"
            else:
                client = scope.get("client")
                outcome = await self.authenticator.authenticate(
                    credential, ip=client[0] if client else "unknown")
            scope[SCOPE_KEY] = outcome
        await self.app(scope, receive, send)


def principal_of(scope: Scope) -> Principal | None:
    outcome = scope.get(SCOPE_KEY)
    return outcome if isinstance(outcome, Principal) else None


# FastAPI dependencies ------------------------------------------------------------------------

# Declared for the OpenAPI document (security schemes); the middleware does the work.
_bearer = HTTPBearer(auto_error=False, description="access token or API key")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def _unauthenticated(reason: str) -> Problem:
    if reason == "unavailable":
        return Problem(503, "auth-unavailable", "Authentication is unavailable",
                       "retry shortly", headers={"Retry-After": "1"})
    if reason == "throttled":
        return Problem(429, "rate-limited", "Too many requests",
                       "too many unknown API keys from this address; retry later",
                       retry_after=1, headers={"Retry-After": "1"})
    slug, detail = _PROBLEM_TEXT.get(reason, ("token-invalid",
                                              f"the credential is not valid ({reason})"))
    return Problem(401, slug, "Not authenticated", detail, reason=reason,
                   headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                f'error_description="{reason}"'
                            if reason != "missing" else "Bearer"})


async def authenticated(
    request: Request,
    _bearer_doc: Annotated[Any, Depends(_bearer)] = None,
    _key_doc: Annotated[Any, Depends(_api_key_header)] = None,
) -> Principal:
    """The caller, or 401 problem+json saying why not."""
    outcome = request.scope.get(SCOPE_KEY, "missing")
    if isinstance(outcome, Principal):
        return outcome
    raise _unauthenticated(str(outcome))


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]


# Access declarations ------------------------------------------------------------------------

# The problem types that mean "this caller may not call this operation".
ACCESS_REFUSALS = frozenset({"unauthenticated", "token-invalid", "token-expired",
                             "token-revoked", "api-key-invalid", "forbidden", "scope-missing",
                             "token-required"})


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Who may call one operation.

    `grants` maps each admitted role to the scope its credential must carry (None: any
    credential of that role). A token carries every scope of its role, so only an API key
    can lack one. `token_only` refuses API keys altogether (credential management).
    An empty `grants` is a public operation: credentials are not looked at.
    """

    grants: Mapping[Role, str | None] = field(default_factory=dict)
    token_only: bool = False
    note: str = ""

    @property
    def public(self) -> bool:
        return not self.grants

    def refusal(self, principal: Principal) -> Problem | None:
        """Why `principal` may not call the operation, or None when it may."""
        if principal.role not in self.grants:
            return Problem(403, "forbidden", "Not allowed",
                           f"this needs the role {' or '.join(self.grants)}")
        if self.token_only and principal.via != "token":
            return Problem(403, "token-required", "Not allowed with an API key",
                           "log in: an API key cannot do this")
        scope = self.grants[principal.role]
        if scope is not None and scope not in principal.scopes:
            return Problem(403, "scope-missing", "Not allowed",
                           f"this needs the scope {scope!r}")
        return None

    def document(self) -> dict[str, Any]:
        """The rule as the OpenAPI extension `x-access` states it."""
        doc: dict[str, Any] = {"public": self.public}
        if not self.public:
            doc["roles"] = {role: {"scope": scope} for role, scope in self.grants.items()}
            doc["token_only"] = self.token_only
        if self.note:
            doc["note"] = self.note
        return doc


class _RoleGate:
    """The dependency of a non-public rule: the caller, or 401/403 problem+json."""

    def __init__(self, rule: AccessRule) -> None:
        self.rule = rule

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        problem = self.rule.refusal(principal)
        if problem is not None:
            raise problem
        return principal


class _PublicGate:
    """The dependency of a public rule: nothing to check."""

    def __init__(self, rule: AccessRule) -> None:
        self.rule = rule

    async def __call__(self) -> None:
        return None


def access(*roles: Role, scope: str | Mapping[Role, str] | None = None,
           token_only: bool = False, note: str = "") -> Any:
    """Declare who may call an operation: one of `roles`, whose API key (if one is used)
    carries `scope` (one for every role, or one per role). Use it as the route's dependency
    (or as the parameter that receives the caller)."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    grants: dict[Role, str | None] = {}
    for role in roles:
        needed = scope.get(role) if isinstance(scope, Mapping) else scope
        if needed is not None and needed not in ROLE_SCOPES[role]:
            raise ValueError(f"role {role} can never hold the scope {needed!r}")
        grants[role] = needed
    return Depends(_RoleGate(AccessRule(grants, token_only=token_only, note=note)))


def public(note: str = "") -> Any:
    """Declare an operation anyone may call, without credentials (`note` says why)."""
    return Depends(_PublicGate(AccessRule(note=note)))


def api_routes(app: FastAPI) -> list[Any]:
    """Every API operation of `app` as routed, included routers' dependencies merged in
    (FastAPI's route contexts, which read like an APIRoute)."""
    return [ctx for ctx in iter_route_contexts(app.routes)
            if isinstance(ctx.original_route, APIRoute)]


def rules_of(route: Any) -> list[AccessRule]:
    """Every access declaration in a route's dependency tree (exactly one is right)."""
    found: list[AccessRule] = []

    def walk(dependant: Dependant) -> None:
        for sub in dependant.dependencies:
            if isinstance(sub.call, _RoleGate | _PublicGate):
                found.append(sub.call.rule)
            walk(sub)

    walk(route.dependant)
    return found


def document_access(app: FastAPI) -> None:
    """Write each operation's access rule into the app's OpenAPI document (`x-access`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        paths = doc.get("paths", {})
        for route in api_routes(app):
            if not route.include_in_schema:
                continue
            rules = rules_of(route)
            if len(rules) != 1:
                continue  # the unit test names it; the document stays silent
            for method in route.methods or ():
                op = paths.get(route.path_format, {}).get(method.lower())
                if op is not None:
                    op["x-access"] = rules[0].document()
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
