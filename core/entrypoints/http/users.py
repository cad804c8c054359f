"""REST for the caller (/me), their API keys, and the admin's view of users.

A trader or analyst asking for another user's id gets 404, the same as for an id that does
not exist: which ids exist is not theirs to learn.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey
from core.entrypoints.http.user_commands import (
    IdentityDep,
    PoolDep,
    UserIdPath,
    not_decided,
    read_user,
)
from core.handlers import users as handlers
from core.views.users import (
    EXAMPLE_API_KEY,
    EXAMPLE_USER,
    ApiKeyPublic,
    UserPublic,
    get_user,
    list_api_keys,
    list_users,
)
from kernel.application import Pending, Rejected
from kernel.auth import ROLE_SCOPES, ROLES, Principal, access
from kernel.commands import command_id_for
from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor, no_store
from kernel.ratelimit import rate_limited
from kernel.sealing import KeyWrapper
from schemas.identity import (
    ApiKeyName,
    DisplayName,
    Role,
    Scope,
)

me_router = APIRouter(prefix="/me", tags=["me"])
users_router = APIRouter(prefix="/users", tags=["users"])

KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", examples=["3f9a0c1b2d4e"])]
# Any credential of the user reads its own; changing the account needs a login (a token).
SELF = Annotated[Principal, access(*ROLES)]
SELF_CHANGE = Annotated[Principal, access(*ROLES, token_only=True)]
KEY_READERS = access("analyst", "admin")
KEY_MANAGERS = access("analyst", "admin", token_only=True)
ADMIN = access("admin", scope="admin")
# Irreversible: an admin's login, never a key that may sit in a script.
FORGETTERS = access("admin", scope="admin", token_only=True,
                    note="irreversible: an admin's login token only")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: PROBLEM_SCHEMA for s in statuses}


def _not_found(uid: str) -> Problem:
    return Problem(404, "user-not-found", "User not found", f"no user {uid}")


class UserPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [EXAMPLE_USER], "next_cursor": "eyJ1c2VyX2lkIjogIjBmM2EifQ"}]})

    items: list[UserPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ApiKeyName
    scopes: list[Scope] = Field(min_length=1, max_length=20)


class ApiKeyCreated(ApiKeyPublic):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        **EXAMPLE_API_KEY, "revoked_at": None,
        "key": "psk_3f9a1c7e5b2d_q7Vb2xY9kLmN4pR8sT1uW6zA3cE5gH0jK2nP7rS9vX4"}]})

    key: str = Field(description="the key itself: shown this once, never again")


class ApiKeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [EXAMPLE_API_KEY]}]})

    items: list[ApiKeyPublic]


class MeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


@me_router.get("", operation_id="getMe", summary="The caller's user",
               response_model=UserPublic, responses=_errors(401, 404))
async def me(principal: SELF, conn: ConnDep, identity: IdentityDep) -> UserPublic:
    user = await get_user(conn, principal.user_id, identity.wrapper)
    if user is None:
        raise _not_found(principal.user_id)
    return user


@me_router.patch("", operation_id="updateMe", summary="Change the caller's display name",
                 response_model=UserPublic,
                 responses={202: {"description": "on the log, not yet decided"},
                            **_errors(400, 401, 403, 404, 409, 413, 422, 429)},
                 dependencies=[Depends(rate_limited("user-commands"))])
async def update_me(body: Annotated[MeUpdate, Body(examples=[{"display_name": "Ada L."}])],
                    principal: SELF_CHANGE, bus: BusDep, pool: PoolDep,
                    identity: IdentityDep, idempotency_key: IdempotencyKey = None) -> Any:
    uid = principal.user_id
    outcome = await handlers.change_display_name(
        bus, identity, user_id=uid, display_name=body.display_name,
        command_id=command_id_for(idempotency_key, caller=uid, scope="display-name",
                                  body=body),
        read=lambda: read_user(pool, uid, identity.wrapper))
    return _shown(outcome, uid)


@me_router.get("/api-keys", operation_id="listMyApiKeys", summary="The caller's API keys",
               response_model=ApiKeyList, responses=_errors(401, 403))
async def my_keys(conn: ConnDep, identity: IdentityDep,
                  principal: Principal = KEY_READERS) -> ApiKeyList:
    return ApiKeyList(items=await list_api_keys(conn, principal.user_id, identity.wrapper))


def _token_only(principal: Principal) -> None:
    if principal.via != "token":
        raise Problem(403, "token-required", "Not allowed with an API key",
                      "log in to manage API keys")


@me_router.post("/api-keys", operation_id="createMyApiKey", status_code=201,
                summary="Create an API key; the answer shows the key once",
                response_model=ApiKeyCreated,
                responses={202: {"description": "on the log, not yet decided"},
                           **_errors(400, 401, 403, 404, 409, 413, 422, 429, 503)},
                dependencies=[Depends(rate_limited("api-keys", 1.0, 10)), Depends(no_store)])
async def create_key(
    body: Annotated[ApiKeyCreate, Body(examples=[{"name": "notebook",
                                                  "scopes": ["reports:read"]}])],
    bus: BusDep, pool: PoolDep, identity: IdentityDep, principal: Principal = KEY_MANAGERS,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    _token_only(principal)
    beyond = sorted(set(body.scopes) - ROLE_SCOPES[principal.role])
    if beyond:
        raise Problem(422, "scope-not-allowed", "Scopes beyond the role",
                      f"role {principal.role} may not grant {', '.join(beyond)}",
                      allowed=sorted(ROLE_SCOPES[principal.role]))
    outcome = await handlers.create_api_key(
        bus, identity, owner=principal.user_id, name=body.name, scopes=frozenset(body.scopes),
        command_id=command_id_for(idempotency_key, caller=principal.user_id,
                                  scope="api-key", body=body),
        read_key=lambda key_id: _key(pool, principal.user_id, key_id, identity.wrapper))
    match outcome:
        case handlers.KeyCreated():
            return ApiKeyCreated(**outcome.key.model_dump(), key=outcome.secret)
        case handlers.KeyAlreadyCreated():
            raise Problem(409, "api-key-already-created", "This API key was already created",
                          "its secret was shown only in the first answer; revoke it and "
                          "create another with a new Idempotency-Key", key_id=outcome.key_id)
        case handlers.UserNotFound():
            raise _not_found(outcome.user_id)
    return not_decided(outcome)


async def _key(pool: AsyncConnectionPool, owner: str, key_id: str,
               wrapper: KeyWrapper | None = None) -> ApiKeyPublic | None:
    async with pool.connection() as conn:  # per read: none held through the wait
        keys = await list_api_keys(conn, owner, wrapper)
    return next((k for k in keys if k.key_id == key_id), None)


@me_router.delete("/api-keys/{key_id}", operation_id="revokeMyApiKey", status_code=204,
                  summary="Revoke one of the caller's API keys",
                  responses=_errors(401, 403, 404, 409, 422))
async def revoke_key(key_id: KeyIdPath, bus: BusDep, pool: PoolDep,
                     principal: Principal = KEY_MANAGERS) -> Response:
    _token_only(principal)
    outcome = await handlers.revoke_api_key(
        bus, owner=principal.user_id, key_id=key_id,
        read_key=lambda kid: _key(pool, principal.user_id, kid))
    if isinstance(outcome, handlers.Done):
        return Response(status_code=204)
    return not_decided(outcome)


@users_router.get("", operation_id="listUsers", summary="Users by id (admins)",
                  response_model=UserPage, responses=_errors(400, 401, 403, 422, 429),
                  dependencies=[ADMIN, LIST_READS])
async def list_all(
    conn: ConnDep, identity: IdentityDep,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    role: Role | None = None,
) -> UserPage:
    after = decode_cursor(cursor, keys=("after",))["after"] if cursor else None
    if after is not None and not isinstance(after, str):
        raise Problem(400, "invalid-cursor", "The cursor is not valid")
    items = await list_users(conn, after=after, limit=limit + 1, role=role,
                             wrapper=identity.wrapper)
    more = len(items) > limit
    items = items[:limit]
    return UserPage(items=items, next_cursor=encode_cursor({"after": items[-1].user_id})
                    if more and items else None)


@users_router.get("/{user_id}", operation_id="getUser",
                  summary="One user (admins: any; others: only themselves)",
                  response_model=UserPublic, responses=_errors(401, 404, 422))
async def get_one(user_id: UserIdPath, principal: SELF,
                  conn: ConnDep, identity: IdentityDep) -> UserPublic:
    if "admin" not in principal.scopes and principal.user_id != user_id:
        raise _not_found(user_id)
    user = await get_user(conn, user_id, identity.wrapper)
    if user is None:
        raise _not_found(user_id)
    return user


@users_router.post("/{user_id}/role", operation_id="changeUserRole",
                   summary="Give a user another role (admins); their tokens die",
                   response_model=UserPublic,
                   responses={202: {"description": "on the log, not yet decided"},
                              **_errors(400, 401, 403, 404, 409, 413, 422, 429, 503)},
                   dependencies=[Depends(rate_limited("user-commands"))])
async def change_role(
    user_id: UserIdPath, body: Annotated[RoleChange, Body(examples=[{"role": "analyst"}])],
    bus: BusDep, pool: PoolDep, identity: IdentityDep,
    principal: Principal = ADMIN, idempotency_key: IdempotencyKey = None,
) -> Any:
    outcome = await handlers.change_role(
        bus, identity, user_id=user_id, role=body.role, admin=principal.user_id,
        command_id=command_id_for(idempotency_key, caller=principal.user_id,
                                  scope=f"role:{user_id}", body=body),
        read=lambda: read_user(pool, user_id, identity.wrapper), recent=bus.recent)
    if isinstance(outcome, handlers.SessionsUnavailable):
        raise Problem(503, "sessions-unavailable", "Sessions cannot be ended now",
                      "retry shortly; the role was not changed", headers={"Retry-After": "1"})
    return _shown(outcome, user_id)


@users_router.post("/{user_id}/forget", operation_id="forgetUser",
                   summary="Erase a user's personal data and credentials (admins); idempotent",
                   description="Deletes the user's data key (their email and display name, "
                               "sealed on the log, no longer open anywhere), password and "
                               "API-key hashes, and ends every session; records "
                               "`user.forgotten`. Balances, assessments and verdicts stay.",
                   response_model=UserPublic,
                   responses={202: {"description": "erased; the log entry is not yet decided"},
                              **_errors(400, 401, 403, 404, 413, 422, 429)},
                   dependencies=[Depends(rate_limited("user-commands"))])
async def forget(
    user_id: UserIdPath, bus: BusDep, pool: PoolDep, identity: IdentityDep,
    principal: Principal = FORGETTERS,
) -> Any:
    outcome = await handlers.forget(bus, identity, user_id=user_id, admin=principal.user_id,
                                    read=lambda: read_user(pool, user_id))
    return _shown(outcome, user_id)


def _shown(outcome: handlers.Shown | handlers.UserNotFound | handlers.NameUnchanged | Rejected
           | Pending, uid: str) -> Any:
    match outcome:
        case handlers.Shown():
            return outcome.user
        case handlers.UserNotFound():
            raise _not_found(uid)
        case handlers.NameUnchanged():
            raise Problem(409, "display-name-unchanged", "Display name unchanged",
                          "the display name is the same")
    return not_decided(outcome)
