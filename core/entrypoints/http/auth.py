"""REST for registration, login, token refresh, logout and password change.

Registration and password changes are user commands decided on Kafka; login and refresh
change no state the log must keep (refresh families live in Redis, core.adapters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Request, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from core.adapters.refresh_tokens import Unknown
from core.domain.users import email_problem, normalise_email, password_problems, user_id
from core.entrypoints.http.deps import BusDep, IdempotencyKey
from core.entrypoints.http.user_commands import IdentityDep, PoolDep, not_decided, read_user
from core.handlers import users as handlers
from core.identity import Identity, RoleChangePending, RoleLookup, TokenPair, UserGone
from core.views.users import UserPublic, login_record, user_exists
from kernel.auth import ROLES, CurrentPrincipal, access, public
from kernel.callers import Caller, caller_of
from kernel.commands import CommandBus, command_id_for
from kernel.http import PROBLEM_SCHEMA, Problem, no_store
from kernel.observability import get_logger
from kernel.ratelimit import RateLimiter, rate_limited, retry_after_seconds, settings_limited
from kernel.tokens import RefreshFamily, RefreshRejected, Rotated, TokenReused
from schemas.identity import DisplayName, Role

log = get_logger(__name__)
T = TypeVar("T")
router = APIRouter(prefix="/auth", tags=["auth"])

# Generous bounds on what is read; the password policy reports the real rules (max 128).
PasswordField = Annotated[str, Field(min_length=1, max_length=1024)]
EmailField = Annotated[str, Field(min_length=1, max_length=320)]
RefreshField = Annotated[str, Field(min_length=1, max_length=512)]

EXAMPLE_PASSWORD = "correct horse battery"
REFRESH_EXAMPLE = "rt1.6f1c0e1d2b3a4c5d6e7f8a9b0c1d2e3f.1.q0R3v9mZkq1Xy3mZ0v9x8w7u6t5s4r3q2p1o0n9"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: PROBLEM_SCHEMA for s in statuses}


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailField
    password: PasswordField
    display_name: DisplayName


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailField
    password: PasswordField


class TokenResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwZjNhOWU1MSJ9.c2lnbmF0dXJl",
        "token_type": "bearer", "expires_in": 900,
        "refresh_token": "rt_4b9e1c7a2f3d4e5a8b6c0d1e2f3a4b5c"}]})

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid for")
    refresh_token: str = Field(description="exchange at /auth/refresh; each works once")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshField


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshField
    everywhere: bool = Field(default=False,
                             description="end every session of the user, access tokens too")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: PasswordField
    new_password: PasswordField


def _strict(name: str, rate: str, burst: str) -> Any:
    """A fail-closed per-IP bucket whose rate and burst come from the app's settings."""
    return Depends(settings_limited(name, rate, burst, fail_open=False))


def _email_caller(request: Request, email: str) -> Caller:
    ip = caller_of(request.scope).ip
    # A digest of the normalised email: guessing is throttled per account, and an email
    # never appears in Redis.
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return Caller(f"email:{digest}", ip)


async def _limit_email(request: Request, email: str) -> Caller:
    """Take a token of this email's login buckets, or answer 429; the caller to give it back to.

    Two buckets, both or neither: a strict one per (email, IP) and a larger one per email
    that refills at least as fast (Settings enforces it). One address drains its own bucket
    long before the email's, so it can never lock the owner out from another address; many
    addresses together still slow the guessing of one account down. A successful login gives
    its token back: only failures count.
    """
    settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    caller = _email_caller(request, email)
    try:
        decision = await limiter.take_many(
            [(limiter.key("login-email-ip", caller.identity, caller.ip),
              settings.login_email_ip_rate_per_s, settings.login_email_ip_burst),
             (limiter.key("login-email", caller.identity),
              settings.login_email_rate_per_s, settings.login_email_burst)])
    except (RedisError, OSError):
        raise Problem(503, "rate-limit-unavailable", "Rate limiting is unavailable",
                      "retry shortly", headers={"Retry-After": "1"}) from None
    if not decision.allowed:
        seconds = retry_after_seconds(decision.retry_after_ms)
        raise Problem(429, "rate-limited", "Too many requests", f"retry in {seconds} s",
                      retry_after=seconds, headers={"Retry-After": str(seconds)})
    return caller


async def _give_back_email(request: Request, caller: Caller) -> None:
    settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        await limiter.give_back(
            [(limiter.key("login-email-ip", caller.identity, caller.ip),
              settings.login_email_ip_burst),
             (limiter.key("login-email", caller.identity), settings.login_email_burst)])
    except (RedisError, OSError) as exc:  # the login succeeded; the token is only not refunded
        log.warning("login bucket refund failed", error=str(exc))


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in,
                         refresh_token=pair.refresh_token)


def _invalid_credentials() -> Problem:
    return Problem(401, "invalid-credentials", "Invalid email or password",
                   "the email and password do not match a user")


@router.post("/register", operation_id="register", status_code=201,
             summary="Create a trader account", response_model=UserPublic,
             responses={202: {"description": "on the log, not yet decided"},
                        **_errors(400, 409, 413, 422, 429, 503)},
             dependencies=[public("anyone may open a trader account"),
                           _strict("register", "register_rate_per_s", "register_burst")])
async def register(
    body: Annotated[RegisterRequest, Body(examples=[{
        "email": "ada@example.com", "password": EXAMPLE_PASSWORD, "display_name": "Ada"}])],
    bus: BusDep, pool: PoolDep, identity: IdentityDep, response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    email = normalise_email(body.email)
    problem = email_problem(email)
    if problem is not None:
        raise Problem(422, "email-invalid", "The email is not valid",
                      f"the email is not acceptable ({problem})", rule=problem)
    broken = password_problems(body.password)
    if broken:
        raise Problem(422, "password-rejected", "The password is not acceptable",
                      f"it breaks: {', '.join(broken)}", rules=broken)
    uid = user_id(email)

    async def exists() -> bool:
        async with pool.connection() as conn:
            return await user_exists(conn, uid)

    outcome = await handlers.register(
        bus, identity, user_id=uid, email=email, display_name=body.display_name,
        password=body.password, exists=exists, read=lambda: read_user(pool, uid, identity.wrapper),
        command_id=command_id_for(
            idempotency_key, caller="anonymous", scope=f"register:{uid}",
            # Not the password: the id is on the log, and must be no offline oracle for
            # it. One email is one registration anyway.
            body=body.model_dump(mode="json", exclude={"password"})))
    match outcome:
        case handlers.EmailTaken():
            raise Problem(409, "email-taken", "Email taken",
                          "a user with this email is registered")
        case handlers.Shown():
            response.headers["Location"] = f"/users/{uid}"
            return outcome.user
    return not_decided(outcome)


@router.post("/login", operation_id="login", summary="Exchange email and password for tokens",
             response_model=TokenResponse, responses=_errors(400, 401, 413, 422, 429, 503),
             dependencies=[public("the email and password in the body are the credential"),
                           _strict("login", "login_rate_per_s", "login_burst"),
                           Depends(no_store)])
async def login(
    body: Annotated[LoginRequest, Body(examples=[{
        "email": "ada@example.com", "password": EXAMPLE_PASSWORD}])],
    request: Request, pool: PoolDep, bus: BusDep, identity: IdentityDep,
) -> TokenResponse:
    email = normalise_email(body.email)
    limited = await _limit_email(request, email)
    creds = None
    if email_problem(email) is None:
        async with pool.connection() as conn:
            creds = await login_record(conn, user_id(email), identity.wrapper)
    # Unknown emails verify against a dummy hash: both failures take the same time.
    if not await identity.verify(creds.password_hash if creds else None, body.password):
        raise _invalid_credentials()
    assert creds is not None
    await _give_back_email(request, limited)
    if identity.passwords.needs_rehash(creds.password_hash):
        identity.in_background(_rehash(bus, identity, pool, creds.user_id, body.password))
    return _tokens(await _issuing(identity.issue(creds.user_id,
                                                 _role_of(pool, identity, creds.user_id))))


def _role_of(pool: AsyncConnectionPool, identity: Identity, uid: str) -> RoleLookup:
    """The read model's role and version of a user, read when a token is about to be made;
    a forgotten user has none."""

    async def lookup() -> tuple[Role, int] | None:
        user = await read_user(pool, uid, identity.wrapper)
        if user is None or user.forgotten_at is not None:
            return None
        return user.role, user.version

    return lookup


async def _issuing(work: Awaitable[T]) -> T:
    """Map the refusals of token issuance to problems."""
    try:
        return await work
    except RoleChangePending:
        raise Problem(503, "role-change-pending", "A role change is being decided",
                      "retry in a moment", headers={"Retry-After": "1"}) from None
    except UserGone:
        raise _refresh_problem(Unknown()) from None


async def _rehash(bus: CommandBus, identity: Identity, pool: AsyncConnectionPool, uid: str,
                  password: str) -> None:
    """Best effort: store the hash made with today's parameters."""
    try:
        await handlers.change_password(bus, identity, user_id=uid, password=password,
                                       read=lambda: read_user(pool, uid, identity.wrapper),
                                       rehash=True)
    except Exception as exc:  # never fails a login that has already succeeded
        log.warning("rehash after login failed", user_id=uid, error=type(exc).__name__)


REFRESH_PROBLEMS = {
    "malformed": ("refresh-token-malformed", "this is not a refresh token"),
    "revoked": ("refresh-token-revoked", "this session was signed out; log in again"),
    "expired": ("refresh-token-expired", "this session has expired; log in again"),
    "wrong-family": ("refresh-token-invalid", "this refresh token is not valid"),
    "unknown-token": ("refresh-token-invalid", "this refresh token is not valid"),
}


def _refresh_problem(outcome: RefreshRejected | TokenReused | Unknown) -> Problem:
    if isinstance(outcome, TokenReused):
        slug, detail = ("refresh-token-reused",
                        "this refresh token was already used; the session is revoked")
    elif isinstance(outcome, Unknown):
        slug, detail = "refresh-token-invalid", "unknown or long-expired refresh token"
    else:
        slug, detail = REFRESH_PROBLEMS[outcome.reason]
    return Problem(401, slug, "Refresh refused", detail,
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@router.post("/refresh", operation_id="refreshTokens",
             summary="Exchange a refresh token for a new pair (each works once)",
             response_model=TokenResponse, responses=_errors(400, 401, 413, 422, 429, 503),
             dependencies=[public("the refresh token in the body is the credential"),
                           _strict("refresh", "refresh_rate_per_s", "refresh_burst"),
                           Depends(no_store)])
async def refresh(
    body: Annotated[RefreshRequest, Body(examples=[{"refresh_token": REFRESH_EXAMPLE}])],
    pool: PoolDep, identity: IdentityDep,
) -> TokenResponse:
    outcome = await identity.refresh.refresh(body.refresh_token, now=datetime.now(UTC))
    if not isinstance(outcome, Rotated):
        raise _refresh_problem(outcome)
    # The role is read after any not-before wait and with no role change pending, never
    # before: a demoted admin looping here gets the new role or nothing.
    uid = outcome.family.user_id
    access = await _issuing(identity.access_token(uid, _role_of(pool, identity, uid)))
    return TokenResponse(access_token=access, expires_in=int(identity.access.ttl.total_seconds()),
                         refresh_token=outcome.token)


@router.post("/logout", operation_id="logout", status_code=204,
             summary="End this session, or every session of the user",
             responses=_errors(400, 401, 413, 422),
             dependencies=[public("the refresh token in the body is the credential")])
async def logout(
    body: Annotated[LogoutRequest, Body(examples=[
        {"refresh_token": REFRESH_EXAMPLE},
        {"refresh_token": REFRESH_EXAMPLE, "everywhere": True}])],
    identity: IdentityDep,
) -> Response:
    outcome = await identity.refresh.end(body.refresh_token, now=datetime.now(UTC))
    if isinstance(outcome, RefreshRejected) and outcome.reason == "revoked":
        return Response(status_code=204)  # signed out already: the same end state
    if not isinstance(outcome, RefreshFamily):
        raise _refresh_problem(outcome)
    if body.everywhere:
        await identity.end_sessions(outcome.user_id)
    return Response(status_code=204)


@router.post("/password", operation_id="changePassword", status_code=204,
             summary="Change the caller's password; every session and API key ends",
             responses={202: {"description": "on the log, not yet decided; sessions ended"},
                        **_errors(400, 401, 403, 404, 413, 422, 429, 503)},
             # The rule first: a refused caller spends none of the user's few attempts.
             dependencies=[access(*ROLES, token_only=True),
                           Depends(rate_limited("password", 5 / 60, 5, fail_open=False))])
async def change_password(
    body: Annotated[PasswordChange, Body(examples=[{
        "current_password": EXAMPLE_PASSWORD, "new_password": "a new and longer one 2"}])],
    principal: CurrentPrincipal, bus: BusDep, pool: PoolDep, identity: IdentityDep,
) -> Response:
    if principal.via != "token":
        raise Problem(403, "token-required", "Not allowed with an API key",
                      "log in to change the password")
    async with pool.connection() as conn:
        current = await login_record(conn, principal.user_id, identity.wrapper)
    if current is None:
        raise Problem(404, "user-not-found", "User not found", "no such user")
    if not await identity.verify(current.password_hash, body.current_password):
        raise Problem(403, "current-password-wrong", "The current password is wrong",
                      "send the password in use now")
    broken = password_problems(body.new_password)
    if broken:
        raise Problem(422, "password-rejected", "The password is not acceptable",
                      f"it breaks: {', '.join(broken)}", rules=broken)
    outcome = await handlers.change_password(
        bus, identity, user_id=principal.user_id, password=body.new_password,
        read=lambda: read_user(pool, principal.user_id, identity.wrapper))
    if isinstance(outcome, handlers.Done):
        return Response(status_code=204)
    return not_decided(outcome)


