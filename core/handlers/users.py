"""User commands: registration, password, display name, API keys, role, forgetting.

They are never answered `Decided`: a reply leaves out every personal field (the sealed email,
display name and key names, schemas.sensitive), so the state after a user command cannot be
rebuilt from it. The answer is the read model's row, which opens the sealed values with the
user's data key (core.views.users), waited for and, when it lags, completed with what the
command set (`Shown`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from core.domain.users import forget_command_id
from core.views.users import ApiKeyPublic, UserPublic
from kernel.application import (
    READ_YOUR_WRITES_S,
    Accepted,
    Command,
    CommandSender,
    Pending,
    Rejected,
    read_your_write,
    send,
)
from kernel.sealing import seal
from kernel.tokens import generate_api_key, new_api_key_id, new_secret
from schemas.envelope import CommandPayload
from schemas.identity import (
    ChangeDisplayName,
    ChangeUserPassword,
    ChangeUserRole,
    CreateApiKey,
    ForgetUser,
    RegisterUser,
    RevokeApiKey,
    Role,
)
from schemas.replies import CommandReply

COMMANDS_TOPIC = "user.commands"

ReadUser = Callable[[], Awaitable[UserPublic | None]]
ReadKey = Callable[[str], Awaitable[ApiKeyPublic | None]]


class Credentials(Protocol):
    """What these handlers need of core.adapters.credentials.CredentialStore."""

    async def data_key(self, user_id: str, *, create: bool = False) -> bytes | None: ...

    async def add_password(self, user_id: str, password_hash: str, *,
                           data_key: bytes) -> uuid.UUID: ...

    async def prune_passwords(self, user_id: str, *, current: uuid.UUID) -> None: ...

    async def add_api_key(self, *, key_id: str, user_id: str, key_hash: str) -> None: ...

    async def forget(self, user_id: str) -> None: ...


class Sessions(Protocol):
    """What these handlers need of core.identity.Identity."""

    @property
    def credentials(self) -> Credentials: ...

    async def hash(self, password: str) -> str: ...

    async def end_sessions(self, user_id: str) -> None: ...

    async def role_change_sent(self, user_id: str) -> int: ...

    async def role_change_decided(self, user_id: str, *, epoch: int, role: Role,
                                  version: int) -> None: ...

    async def role_change_settled(self, user_id: str, *, epoch: int) -> None: ...

    def settle_role_change_later(self, user_id: str, *, epoch: int, role: Role,
                                 reply: Callable[[], CommandReply | None],
                                 ) -> Coroutine[Any, Any, None]: ...

    def in_background(self, work: Coroutine[Any, Any, None]) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Shown:
    """Decided: the user as the read model shows it (completed when it lags)."""

    user: UserPublic


@dataclass(frozen=True, kw_only=True)
class UserNotFound:
    user_id: str


@dataclass(frozen=True, kw_only=True)
class EmailTaken:
    """Known already: no hash is spent on it (the decider would refuse it too)."""


@dataclass(frozen=True, kw_only=True)
class NameUnchanged:
    """Sealed names differ on every sealing, so the decider cannot see a no-op: this can."""


@dataclass(frozen=True, kw_only=True)
class SessionsUnavailable:
    """The user's sessions could not be ended, so the role change was not sent."""


@dataclass(frozen=True, kw_only=True)
class KeyCreated:
    key: ApiKeyPublic
    secret: str  # the whole key, shown once


@dataclass(frozen=True, kw_only=True)
class KeyAlreadyCreated:
    """A retry of a creation already decided: that key was shown once and is stored
    nowhere; `key_id` is None when the decider no longer keeps the events."""

    key_id: str | None


@dataclass(frozen=True, kw_only=True)
class Done:
    """Decided, and the read model shows it (or the wait ran out)."""


async def submit(bus: CommandSender,
                 command: Command[CommandPayload]) -> Accepted | Rejected | Pending:
    """Send a user command and wait for its decision (its version, its redacted events)."""
    return await send(bus, COMMANDS_TOPIC, None, command)


async def register(bus: CommandSender, sessions: Sessions, *, user_id: str, email: str,
                   display_name: str, password: str, command_id: uuid.UUID,
                   exists: Callable[[], Awaitable[bool]], read: ReadUser,
                   wait_s: float = READ_YOUR_WRITES_S,
                   ) -> Shown | EmailTaken | Rejected | Pending:
    """A trader account: the identity service's rows first, then a command that names them
    only by id. A refused registration leaves a credential no user row ever points at,
    usable by no one."""
    if await exists():
        return EmailTaken()
    data_key = await sessions.credentials.data_key(user_id, create=True)
    assert data_key is not None
    credential_id = await sessions.credentials.add_password(
        user_id, await sessions.hash(password), data_key=data_key)
    outcome = await submit(bus, Command(payload=RegisterUser(
        email=seal(data_key, subject=user_id, field="email", text=email),
        display_name=seal(data_key, subject=user_id, field="display_name", text=display_name),
        credential_id=credential_id), aggregate_id=user_id, command_id=command_id,
        actor=user_id))
    if not isinstance(outcome, Accepted):
        return outcome
    registered = await read_your_write(read, lambda _: True, wait=wait_s)
    if registered is not None:
        return Shown(user=registered)
    at = outcome.reply.events[0]["occurred_at"]
    return Shown(user=UserPublic(user_id=user_id, email=email, display_name=display_name,
                                 role="trader", registered_at=at, updated_at=at,
                                 version=outcome.version))


async def change_password(bus: CommandSender, sessions: Sessions, *, user_id: str,
                          password: str, read: ReadUser, rehash: bool = False,
                          wait_s: float = READ_YOUR_WRITES_S) -> Done | Rejected | Pending:
    """Store a new credential, record on the log that the password changed (its id only),
    and once the read model points at it, delete the superseded hashes. A change (not a
    rehash after login) ends every session as soon as it is on the log, decided in time or
    not; its decision revokes the API keys (core.domain.users)."""
    # A user of the version 1 era gets a data key at their first password change.
    data_key = await sessions.credentials.data_key(user_id, create=True)
    assert data_key is not None
    credential_id = await sessions.credentials.add_password(
        user_id, await sessions.hash(password), data_key=data_key)
    outcome = await submit(bus, Command(payload=ChangeUserPassword(
        credential_id=credential_id, rehash=rehash), aggregate_id=user_id,
        command_id=uuid.uuid4(), actor=user_id))
    if isinstance(outcome, Rejected):
        return outcome
    if not rehash:
        await sessions.end_sessions(user_id)
    if isinstance(outcome, Pending):
        return outcome
    version = outcome.version
    current = await read_your_write(read, lambda u: u.version >= version, wait=wait_s)
    if current is not None and current.version >= version:
        await sessions.credentials.prune_passwords(user_id, current=credential_id)
    return Done()


async def change_display_name(bus: CommandSender, sessions: Sessions, *, user_id: str,
                              display_name: str, command_id: uuid.UUID, read: ReadUser,
                              wait_s: float = READ_YOUR_WRITES_S,
                              ) -> Shown | UserNotFound | NameUnchanged | Rejected | Pending:
    current = await read()
    if current is None or current.forgotten_at is not None:
        return UserNotFound(user_id=user_id)
    if current.display_name == display_name:
        return NameUnchanged()
    # A user of the version 1 era gets a data key at their first change.
    data_key = await sessions.credentials.data_key(user_id, create=True)
    assert data_key is not None
    sealed = seal(data_key, subject=user_id, field="display_name", text=display_name)
    outcome = await submit(bus, Command(payload=ChangeDisplayName(display_name=sealed),
                                        aggregate_id=user_id, command_id=command_id,
                                        actor=user_id))
    if not isinstance(outcome, Accepted):
        return outcome
    version = outcome.version
    user = await read_your_write(read, lambda u: u.version >= version, wait=wait_s)
    if user is None:
        return UserNotFound(user_id=user_id)
    if user.version < version:
        return Shown(user=user.model_copy(update={"display_name": display_name}))
    return Shown(user=user)


async def create_api_key(bus: CommandSender, sessions: Sessions, *, owner: str, name: str,
                         scopes: frozenset[str], command_id: uuid.UUID, read_key: ReadKey,
                         wait_s: float = READ_YOUR_WRITES_S,
                         ) -> (KeyCreated | KeyAlreadyCreated | UserNotFound | Rejected
                               | Pending):
    """A fresh key: its hash to the identity service's store first, then the log gets its
    id, scopes and name (sealed under the owner's data key)."""
    key, record = generate_api_key(key_id=new_api_key_id(), secret=new_secret(),
                                   owner=owner, scopes=scopes)
    # A user of the version 1 era gets a data key now.
    data_key = await sessions.credentials.data_key(owner, create=True)
    if data_key is None:
        return UserNotFound(user_id=owner)  # being forgotten
    await sessions.credentials.add_api_key(key_id=record.key_id, user_id=owner,
                                           key_hash=record.key_hash)
    outcome = await submit(bus, Command(payload=CreateApiKey(
        key_id=record.key_id, name=seal(data_key, subject=owner, field="api_key_name",
                                        text=name),
        scopes=tuple(sorted(scopes))), aggregate_id=owner, command_id=command_id, actor=owner))
    if not isinstance(outcome, Accepted):
        return outcome
    # A duplicate long after the decision may come without its events (kernel.decider_state
    # keeps them within a byte budget): then this request's key was not the one recorded.
    decided = next((e["payload"]["key_id"] for e in outcome.reply.events
                    if e["type"] == "user.api-key-created"),
                   "" if outcome.duplicate else record.key_id)
    if decided != record.key_id:
        # A retry of a creation already decided (same command id): that key was shown once,
        # in the first answer, and is stored nowhere; this request's secret was never
        # recorded.
        return KeyAlreadyCreated(key_id=decided or None)
    listed = await read_your_write(lambda: read_key(record.key_id), lambda _: True,
                                   wait=wait_s)
    if listed is None:
        # Decided but not yet in the read model: the key works once it is.
        at = outcome.reply.events[0]["occurred_at"]
        listed = ApiKeyPublic(key_id=record.key_id, name=name, scopes=sorted(scopes),
                              created_at=at, revoked_at=None, prefix=record.display_prefix)
    return KeyCreated(key=listed, secret=key)


async def revoke_api_key(bus: CommandSender, *, owner: str, key_id: str,
                         read_key: ReadKey,
                         wait_s: float = READ_YOUR_WRITES_S) -> Done | Rejected | Pending:
    outcome = await submit(bus, Command(payload=RevokeApiKey(key_id=key_id), aggregate_id=owner,
                                        command_id=uuid.uuid4(), actor=owner))
    if not isinstance(outcome, Accepted):
        return outcome
    await read_your_write(lambda: read_key(key_id), lambda k: k.revoked_at is not None,
                          wait=wait_s)
    return Done()


async def change_role(bus: CommandSender, sessions: Sessions, *, user_id: str, role: Role,
                      admin: str, command_id: uuid.UUID, read: ReadUser,
                      recent: Callable[[uuid.UUID], CommandReply | None],
                      wait_s: float = READ_YOUR_WRITES_S,
                      ) -> Shown | UserNotFound | SessionsUnavailable | Rejected | Pending:
    """Tokens carry the role: before the change is even on the log, the user's sessions end
    and no token is issued until it is decided (core.identity): none with the old role."""
    try:
        epoch = await sessions.role_change_sent(user_id)
    except (RedisError, OSError):
        return SessionsUnavailable()  # nothing sent: sessions that live on must not change
    outcome = await submit(bus, Command(payload=ChangeUserRole(role=role),
                                        aggregate_id=user_id, command_id=command_id,
                                        actor=admin))
    if isinstance(outcome, Rejected):
        await sessions.role_change_settled(user_id, epoch=epoch)
        return outcome
    if isinstance(outcome, Pending):
        sessions.in_background(sessions.settle_role_change_later(
            user_id, epoch=epoch, role=role, reply=lambda: recent(command_id)))
        return outcome
    version = outcome.version
    await sessions.role_change_decided(user_id, epoch=epoch, role=role, version=version)
    user = await read_your_write(read, lambda u: u.version >= version, wait=wait_s)
    if user is None:
        return UserNotFound(user_id=user_id)
    return Shown(user=user.model_copy(update={"role": role}) if user.version < version
                 else user)


async def forget(bus: CommandSender, sessions: Sessions, *, user_id: str, admin: str,
                 read: ReadUser,
                 wait_s: float = READ_YOUR_WRITES_S) -> Shown | UserNotFound | Rejected | Pending:
    """Erase first: from then on nothing of the user opens or logs in, whatever the log
    says; then record it (`user.forgotten`, a command id fixed per user: idempotent)."""
    user = await read()
    if user is None:
        return UserNotFound(user_id=user_id)
    await sessions.credentials.forget(user_id)
    await sessions.end_sessions(user_id)
    if user.forgotten_at is not None:
        return Shown(user=user)
    outcome = await submit(bus, Command(payload=ForgetUser(), aggregate_id=user_id,
                                        command_id=forget_command_id(user_id), actor=admin))
    if not isinstance(outcome, Accepted):
        return outcome
    forgotten = await read_your_write(read, lambda u: u.forgotten_at is not None,
                                      wait=wait_s)
    if forgotten is None or forgotten.forgotten_at is None:
        at = next((e["occurred_at"] for e in outcome.reply.events
                   if e["type"] == "user.forgotten"), user.updated_at)
        return Shown(user=user.model_copy(update={"email": None, "display_name": None,
                                                  "forgotten_at": at,
                                                  "version": outcome.version}))
    return Shown(user=forgotten)
