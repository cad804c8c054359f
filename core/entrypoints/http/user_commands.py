"""What the auth and users routers share: refusals of user commands, the pool and identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from core.entrypoints.http.commands import refused, undecided
from core.identity import Identity
from core.views.users import UserPublic, get_user
from kernel.application import Pending, Rejected
from kernel.deps import PoolDep
from kernel.sealing import KeyWrapper

__all__ = ["REASONS", "IdentityDep", "PoolDep", "UserIdPath", "not_decided", "read_user"]

# Refusal reasons -> (HTTP status, problem type).
REASONS: dict[str, tuple[int, str]] = {
    "email-taken": (409, "email-taken"),
    "email-invalid": (422, "email-invalid"),
    "user-not-registered": (404, "user-not-found"),
    "role-unchanged": (409, "role-unchanged"),
    "display-name-unchanged": (409, "display-name-unchanged"),
    "api-key-unknown": (404, "api-key-not-found"),
    "api-key-already-revoked": (409, "api-key-already-revoked"),
    "api-key-duplicate": (409, "api-key-duplicate"),
    "api-key-scope-not-allowed": (422, "scope-not-allowed"),
    "user-forgotten": (409, "user-forgotten"),
}

UserIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                         r"[0-9a-f]{12}$", examples=[
                                             "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"])]




async def get_identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


IdentityDep = Annotated[Identity, Depends(get_identity)]


def not_decided(outcome: Rejected | Pending) -> JSONResponse:
    """A user command's refusal raised as its problem, or the 202 of one not decided in
    time (poll /commands/{id})."""
    if isinstance(outcome, Rejected):
        raise refused(outcome, REASONS)
    return undecided(outcome, location=f"/commands/{outcome.command_id}")


async def read_user(pool: AsyncConnectionPool, uid: str,
                    wrapper: KeyWrapper | None = None) -> UserPublic | None:
    """The user's row, on a connection borrowed for this read only: routes that wait for a
    decision must hold none through the wait (`kernel.deps.PoolDep`)."""
    async with pool.connection() as conn:
        return await get_user(conn, uid, wrapper)
