"""REST for the caller (/me), their API keys, and the admin's view of users.

A trader or analyst asking for another user's id gets 404, the same as for an id that does
not exist: which ids exist is not theirs to learn.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from core.domain.users import forget_command_id
from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey
from core.entrypoints.http.user_commands import (
    IdentityDep,
    UserIdPath,
    send,
)
from core.views.users import (
    EXAMPLE_API_KEY,
    EXAMPLE_USER,
    ApiKeyPublic,
    UserPublic,
    get_user,
    list_api_keys,
    list_users,
)
from kernel.application import read_your_write
from kernel.auth import ROLE_SCOPES, ROLES, Principal, access
from kernel.commands import command_id_for
from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor, no_store
from kernel.ratelimit import rate_limited
from kernel.sealing import KeyWrapper, seal
from kernel.tokens import generate_api_key, new_api_key_id, new_secret
from schemas.identity import (
    ApiKeyName,
    ChangeDisplayName,
    ChangeUserRole,
    CreateApiKey,
    DisplayName,
    ForgetUser,
    RevokeApiKey,
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
                    principal: SELF_CHANGE, bus: BusDep, conn: ConnDep,
                    identity: IdentityDep, idempotency_key: IdempotencyKey = None) -> Any:
    uid = principal.user_id
    current = await get_user(conn, uid, identity.wrapper)
    if current is None or current.forgotten_at is not None:
        raise _not_found(uid)
    # Sealed names differ on every sealing, so the decider cannot see a no-op: look here.
    if current.display_name == body.display_name:
        raise Problem(409, "display-name-unchanged", "Display name unchanged",
                      "the display name is the same")
    # A user of the version 1 era gets a data key at their first change.
    data_key = await identity.credentials.data_key(uid, create=True)
    assert data_key is not None
    sealed = seal(data_key, subject=uid, field="display_name", text=body.display_name)
    outcome = await send(bus, uid, ChangeDisplayName(display_name=sealed), command_id=(
        command_id_for(idempotency_key, caller=uid, scope="display-name", body=body)))
    if isinstance(outcome, JSONResponse):
        return outcome
    version = outcome.version
    user = await read_your_write(lambda: get_user(conn, uid, identity.wrapper),
                                 lambda u: u.version >= version)
    if user is None:
        raise _not_found(uid)
    if user.version < version:
        return user.model_copy(update={"display_name": body.display_name})
    return user


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
    bus: BusDep, conn: ConnDep, identity: IdentityDep, principal: Principal = KEY_MANAGERS,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    _token_only(principal)
    beyond = sorted(set(body.scopes) - ROLE_SCOPES[principal.role])
    if beyond:
        raise Problem(422, "scope-not-allowed", "Scopes beyond the role",
                      f"role {principal.role} may not grant {', '.join(beyond)}",
                      allowed=sorted(ROLE_SCOPES[principal.role]))
    scopes = frozenset(body.scopes)
    key, record = generate_api_key(key_id=new_api_key_id(), secret=new_secret(),
                                   owner=principal.user_id, scopes=scopes)
    # The hash goes to the identity service's store first; the log gets id, scopes and the
    # name sealed under the owner's data key (a user of the version 1 era gets one now).
    data_key = await identity.credentials.data_key(principal.user_id, create=True)
    if data_key is None:
        raise _not_found(principal.user_id)  # being forgotten
    await identity.credentials.add_api_key(key_id=record.key_id, user_id=principal.user_id,
                                           key_hash=record.key_hash)
    outcome = await send(bus, principal.user_id, CreateApiKey(
        key_id=record.key_id, name=seal(data_key, subject=principal.user_id,
                                        field="api_key_name", text=body.name),
        scopes=tuple(sorted(scopes))), command_id=command_id_for(
            idempotency_key, caller=principal.user_id, scope="api-key", body=body))
    if isinstance(outcome, JSONResponse):
        return outcome
    # A duplicate long after the decision may come without its events (kernel.decider_state
    # keeps them within a byte budget): then this request's key was not the one recorded.
    decided = next((e["payload"]["key_id"] for e in outcome.reply.events
                    if e["type"] == "user.api-key-created"),
                   "" if outcome.duplicate else record.key_id)
    if decided != record.key_id:
        # A retry of a creation already decided (same Idempotency-Key, same command id): that
        # key was shown once, in the first answer, and is stored nowhere; this request's
        # fresh secret was never recorded.
        first = decided or None  # unknown when the events were trimmed
        raise Problem(409, "api-key-already-created", "This API key was already created",
                      "its secret was shown only in the first answer; revoke it and create "
                      "another with a new Idempotency-Key", key_id=first)
    listed = await read_your_write(
        lambda: _key(conn, principal.user_id, record.key_id, identity.wrapper), lambda _: True)
    if listed is None:
        # Decided but not yet in the read model: the key works once it is.
        at = outcome.reply.events[0]["occurred_at"]
        listed = ApiKeyPublic(key_id=record.key_id, name=body.name, scopes=sorted(scopes),
                              created_at=at, revoked_at=None, prefix=record.display_prefix)
    return ApiKeyCreated(**listed.model_dump(), key=key)


async def _key(conn: ConnDep, owner: str, key_id: str,
               wrapper: KeyWrapper | None = None) -> ApiKeyPublic | None:
    keys = await list_api_keys(conn, owner, wrapper)
    return next((k for k in keys if k.key_id == key_id), None)


@me_router.delete("/api-keys/{key_id}", operation_id="revokeMyApiKey", status_code=204,
                  summary="Revoke one of the caller's API keys",
                  responses=_errors(401, 403, 404, 409, 422))
async def revoke_key(key_id: KeyIdPath, bus: BusDep, conn: ConnDep,
                     principal: Principal = KEY_MANAGERS) -> Response:
    _token_only(principal)
    outcome = await send(bus, principal.user_id, RevokeApiKey(key_id=key_id),
                         command_id=uuid.uuid4())
    if isinstance(outcome, JSONResponse):
        return outcome
    await read_your_write(lambda: _key(conn, principal.user_id, key_id),
                          lambda k: k.revoked_at is not None)
    return Response(status_code=204)


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
    bus: BusDep, conn: ConnDep, identity: IdentityDep,
    principal: Principal = ADMIN, idempotency_key: IdempotencyKey = None,
) -> Any:
    # Tokens carry the role. Before the change is even on the log, its user's sessions end
    # and no token is issued until it is decided (core.identity): none with the old role.
    command_id = command_id_for(idempotency_key, caller=principal.user_id,
                                scope=f"role:{user_id}", body=body)
    try:
        epoch = await identity.role_change_sent(user_id)
    except (RedisError, OSError):
        # Nothing is sent: a change whose sessions could not be ended must not be decided.
        raise Problem(503, "sessions-unavailable", "Sessions cannot be ended now",
                      "retry shortly; the role was not changed",
                      headers={"Retry-After": "1"}) from None
    try:
        outcome = await send(bus, user_id, ChangeUserRole(role=body.role),
                             actor=principal.user_id, command_id=command_id)
    except Problem:
        await identity.role_change_settled(user_id, epoch=epoch)
        raise
    if isinstance(outcome, JSONResponse):
        identity.in_background(identity.settle_role_change_later(
            user_id, epoch=epoch, role=body.role, reply=lambda: bus.recent(command_id)))
        return outcome
    version = outcome.version
    await identity.role_change_decided(user_id, epoch=epoch, role=body.role, version=version)
    user = await read_your_write(lambda: get_user(conn, user_id, identity.wrapper),
                                 lambda u: u.version >= version)
    if user is None:
        raise _not_found(user_id)
    return user.model_copy(update={"role": body.role}) if user.version < version else user


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
    user_id: UserIdPath, bus: BusDep, conn: ConnDep, identity: IdentityDep,
    principal: Principal = FORGETTERS,
) -> Any:
    user = await get_user(conn, user_id)
    if user is None:
        raise _not_found(user_id)
    # Erase first: from here on nothing of the user opens or logs in, whatever the log says.
    await identity.credentials.forget(user_id)
    await identity.end_sessions(user_id)
    if user.forgotten_at is not None:
        return user
    outcome = await send(bus, user_id, ForgetUser(), actor=principal.user_id,
                         command_id=forget_command_id(user_id))
    if isinstance(outcome, JSONResponse):
        return outcome
    forgotten = await read_your_write(lambda: get_user(conn, user_id),
                                      lambda u: u.forgotten_at is not None)
    if forgotten is None or forgotten.forgotten_at is None:
        at = next((e["occurred_at"] for e in outcome.reply.events if e["type"] == "user.forgotten"),
                  user.updated_at)
        return user.model_copy(update={"email": None, "display_name": None,
                                       "forgotten_at": at, "version": outcome.version})
    return forgotten
