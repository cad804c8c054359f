"""core.handlers.users: user commands on a deciding bus, with fake credentials and sessions.

Their replies are redacted, so they are never folded: the answer is the read model's row,
completed with what the command set when the row lags.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from core.domain.users import UserAggregate
from core.handlers import users as handlers
from core.views.users import ApiKeyPublic, UserPublic
from kernel.application import Accepted, Command, Pending, Rejected
from kernel.auth import ROLE_SCOPES
from kernel.sealing import new_data_key, open_sealed
from schemas.envelope import CommandPayload
from schemas.identity import RegisterUser, Role, user_id_for_email
from schemas.replies import CommandReply
from tests.support.deciding_bus import DecidingBus

UID = str(user_id_for_email("ada@example.com"))
ADMIN = "7c4f1e2a-5b3d-5e6f-8a9b-0c1d2e3f4a5b"
AT = datetime(2026, 1, 1, tzinfo=UTC)
WAIT = 0.02  # how long a handler waits here for a read model that never catches up
ROW = UserPublic(user_id=UID, email="ada@example.com", display_name="Ada", role="trader",
                 registered_at=AT, updated_at=AT, version=1)


class FakeCredentials:
    def __init__(self) -> None:
        self.key: bytes | None = new_data_key()
        self.api_keys: dict[str, str] = {}
        self.passwords: list[tuple[uuid.UUID, str]] = []
        self.pruned: list[uuid.UUID] = []
        self.forgotten: list[str] = []

    async def data_key(self, user_id: str, *, create: bool = False) -> bytes | None:
        return self.key

    async def add_password(self, user_id: str, password_hash: str, *,
                           data_key: bytes) -> uuid.UUID:
        credential = uuid.uuid4()
        self.passwords.append((credential, password_hash))
        return credential

    async def prune_passwords(self, user_id: str, *, current: uuid.UUID) -> None:
        self.pruned.append(current)

    async def add_api_key(self, *, key_id: str, user_id: str, key_hash: str) -> None:
        self.api_keys[key_id] = key_hash

    async def forget(self, user_id: str) -> None:
        self.forgotten.append(user_id)
        self.key = None


class FakeSessions:
    """Records what the identity service was asked, in order."""

    def __init__(self, *, redis_down: bool = False) -> None:
        self._credentials = FakeCredentials()
        self.redis_down = redis_down
        self.calls: list[tuple[Any, ...]] = []
        self.background: list[Coroutine[Any, Any, None]] = []

    @property
    def credentials(self) -> FakeCredentials:
        return self._credentials

    async def hash(self, password: str) -> str:
        return f"hashed:{password}"

    async def end_sessions(self, user_id: str) -> None:
        self.calls.append(("end-sessions", user_id))

    async def role_change_sent(self, user_id: str) -> int:
        if self.redis_down:
            raise RedisConnectionError("refused")
        self.calls.append(("sent", user_id))
        return 7

    async def role_change_decided(self, user_id: str, *, epoch: int, role: Role,
                                  version: int) -> None:
        self.calls.append(("decided", epoch, role, version))

    async def role_change_settled(self, user_id: str, *, epoch: int) -> None:
        self.calls.append(("settled", epoch))

    async def settle_role_change_later(self, user_id: str, *, epoch: int, role: Role,
                                       reply: Callable[[], CommandReply | None]) -> None:
        self.calls.append(("later", epoch, role))

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        self.background.append(work)


def bus() -> DecidingBus:
    return DecidingBus({handlers.COMMANDS_TOPIC: UserAggregate(ROLE_SCOPES)})


def command(payload: CommandPayload, actor: str = UID) -> Command[CommandPayload]:
    return Command(payload=payload, aggregate_id=UID, command_id=uuid.uuid4(), actor=actor)


async def registered(b: DecidingBus) -> None:
    outcome = await handlers.submit(b, command(RegisterUser(
        email="p0:ada@example.com", display_name="p0:Ada", credential_id=uuid.uuid4())))
    assert isinstance(outcome, Accepted)


def stale(row: UserPublic | None = ROW) -> handlers.ReadUser:
    """A read model that never catches up."""
    async def read() -> UserPublic | None:
        return row
    return read


@pytest.mark.asyncio
async def test_a_registration_is_accepted_with_its_redacted_events_only() -> None:
    b = bus()
    outcome = await handlers.submit(b, command(RegisterUser(
        email="p0:ada@example.com", display_name="p0:Ada", credential_id=uuid.uuid4())))
    assert isinstance(outcome, Accepted) and outcome.version == 1 and outcome.facts is None
    (event,) = outcome.reply.events
    assert event["type"] == "user.registered"
    assert "email" not in event["payload"] and "display_name" not in event["payload"]


@pytest.mark.asyncio
async def test_a_user_command_refused_carries_the_reason() -> None:
    outcome = await handlers.change_role(
        bus(), FakeSessions(), user_id=UID, role="analyst", admin=ADMIN,
        command_id=uuid.uuid4(), read=stale(), recent=lambda _: None, wait_s=WAIT)
    assert isinstance(outcome, Rejected) and outcome.reason == "user-not-registered"


@pytest.mark.asyncio
async def test_the_same_display_name_is_refused_before_anything_is_sent() -> None:
    b = bus()
    outcome = await handlers.change_display_name(
        b, FakeSessions(), user_id=UID, display_name="Ada", command_id=uuid.uuid4(),
        read=stale(), wait_s=WAIT)
    assert isinstance(outcome, handlers.NameUnchanged) and b.sent == []


@pytest.mark.asyncio
async def test_a_new_display_name_is_sealed_on_the_log_and_shown_despite_a_lagging_row() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.change_display_name(
        b, sessions, user_id=UID, display_name="Ada L.", command_id=uuid.uuid4(),
        read=stale(), wait_s=WAIT)
    assert isinstance(outcome, handlers.Shown)
    assert outcome.user.display_name == "Ada L." and outcome.user.version == 1
    sealed = b.sent[-1].payload["display_name"]
    assert sealed.startswith("s1:")
    assert open_sealed(sessions.credentials.key, subject=UID, field="display_name",
                       value=sealed) == "Ada L."


@pytest.mark.asyncio
async def test_a_forgotten_user_cannot_change_their_name() -> None:
    outcome = await handlers.change_display_name(
        bus(), FakeSessions(), user_id=UID, display_name="X", command_id=uuid.uuid4(),
        read=stale(ROW.model_copy(update={"forgotten_at": AT})), wait_s=WAIT)
    assert isinstance(outcome, handlers.UserNotFound)


@pytest.mark.asyncio
async def test_a_role_change_is_not_sent_when_sessions_cannot_be_ended() -> None:
    b = bus()
    await registered(b)
    outcome = await handlers.change_role(
        b, FakeSessions(redis_down=True), user_id=UID, role="analyst", admin=ADMIN,
        command_id=uuid.uuid4(), read=stale(), recent=lambda _: None, wait_s=WAIT)
    assert isinstance(outcome, handlers.SessionsUnavailable)
    assert [c.type for c in b.sent] == ["user.register"]


@pytest.mark.asyncio
async def test_a_decided_role_change_is_recorded_with_its_version_and_shown() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.change_role(
        b, sessions, user_id=UID, role="analyst", admin=ADMIN, command_id=uuid.uuid4(),
        read=stale(), recent=lambda _: None, wait_s=WAIT)
    assert isinstance(outcome, handlers.Shown) and outcome.user.role == "analyst"
    assert sessions.calls == [("sent", UID), ("decided", 7, "analyst", 2)]
    assert b.log[-1].actor == ADMIN


@pytest.mark.asyncio
async def test_a_refused_role_change_settles_its_epoch() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.change_role(
        b, sessions, user_id=UID, role="trader", admin=ADMIN, command_id=uuid.uuid4(),
        read=stale(), recent=lambda _: None, wait_s=WAIT)
    assert isinstance(outcome, Rejected) and outcome.reason == "role-unchanged"
    assert sessions.calls == [("sent", UID), ("settled", 7)]


@pytest.mark.asyncio
async def test_an_undecided_role_change_is_settled_later_in_the_background() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    b.undecided.add("user.change-role")
    outcome = await handlers.change_role(
        b, sessions, user_id=UID, role="admin", admin=ADMIN, command_id=uuid.uuid4(),
        read=stale(), recent=lambda _: None, wait_s=WAIT)
    assert isinstance(outcome, Pending)
    (work,) = sessions.background
    await work
    assert sessions.calls == [("sent", UID), ("later", 7, "admin")]


@pytest.mark.asyncio
async def test_forget_erases_and_ends_sessions_before_the_log_records_it() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.forget(b, sessions, user_id=UID, admin=ADMIN, read=stale(),
                                    wait_s=WAIT)
    assert isinstance(outcome, handlers.Shown)
    assert outcome.user.forgotten_at is not None and outcome.user.email is None
    assert sessions.credentials.forgotten == [UID] and ("end-sessions", UID) in sessions.calls
    assert b.log[-1].type == "user.forgotten"


@pytest.mark.asyncio
async def test_forgetting_a_forgotten_user_sends_nothing() -> None:
    b, sessions = bus(), FakeSessions()
    outcome = await handlers.forget(b, sessions, user_id=UID, admin=ADMIN,
                                    read=stale(ROW.model_copy(update={"forgotten_at": AT})),
                                    wait_s=WAIT)
    assert isinstance(outcome, handlers.Shown) and b.sent == []
    assert sessions.credentials.forgotten == [UID]  # erased again all the same


@pytest.mark.asyncio
async def test_a_new_api_key_is_stored_as_a_hash_and_shown_once() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)

    async def unseen(key_id: str) -> ApiKeyPublic | None:
        return None

    outcome = await handlers.create_api_key(
        b, sessions, owner=UID, name="notebook", scopes=frozenset({"account:read"}),
        command_id=uuid.uuid4(), read_key=unseen, wait_s=WAIT)
    assert isinstance(outcome, handlers.KeyCreated)
    assert outcome.secret.startswith(outcome.key.prefix) and outcome.key.name == "notebook"
    assert list(sessions.credentials.api_keys) == [outcome.key.key_id]
    assert outcome.secret not in str(b.sent[-1].payload)


@pytest.mark.asyncio
async def test_a_retried_api_key_creation_names_the_key_of_the_first_answer() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    cid = uuid.uuid4()

    async def unseen(key_id: str) -> ApiKeyPublic | None:
        return None

    first = await handlers.create_api_key(
        b, sessions, owner=UID, name="notebook", scopes=frozenset({"account:read"}),
        command_id=cid, read_key=unseen, wait_s=WAIT)
    again = await handlers.create_api_key(
        b, sessions, owner=UID, name="notebook", scopes=frozenset({"account:read"}),
        command_id=cid, read_key=unseen, wait_s=WAIT)
    assert isinstance(first, handlers.KeyCreated)
    assert again == handlers.KeyAlreadyCreated(key_id=first.key.key_id)


def caught_up(b: DecidingBus) -> handlers.ReadUser:
    """A read model in step with the log (its version is the aggregate's)."""
    async def read() -> UserPublic | None:
        events = b.events_of(UID)
        return ROW.model_copy(update={"version": len(events)}) if events else None
    return read


@pytest.mark.asyncio
async def test_a_registration_stores_the_hash_and_puts_only_sealed_values_on_the_log() -> None:
    b, sessions = bus(), FakeSessions()

    async def unknown() -> bool:
        return False

    outcome = await handlers.register(
        b, sessions, user_id=UID, email="ada@example.com", display_name="Ada",
        password="a long password 1", command_id=uuid.uuid4(), exists=unknown,
        read=stale(None), wait_s=WAIT)
    assert isinstance(outcome, handlers.Shown)
    assert (outcome.user.email, outcome.user.role, outcome.user.version) == (
        "ada@example.com", "trader", 1)
    ((credential, hashed),) = sessions.credentials.passwords
    assert hashed == "hashed:a long password 1"
    payload = b.sent[-1].payload
    assert payload["credential_id"] == str(credential)
    assert "ada@example.com" not in str(payload) and "a long password" not in str(payload)


@pytest.mark.asyncio
async def test_a_known_email_spends_no_hash_and_sends_nothing() -> None:
    b, sessions = bus(), FakeSessions()

    async def known() -> bool:
        return True

    outcome = await handlers.register(
        b, sessions, user_id=UID, email="ada@example.com", display_name="Ada",
        password="a long password 1", command_id=uuid.uuid4(), exists=known,
        read=stale(), wait_s=WAIT)
    assert isinstance(outcome, handlers.EmailTaken)
    assert b.sent == [] and sessions.credentials.passwords == []


@pytest.mark.asyncio
async def test_a_password_change_ends_sessions_and_prunes_once_the_row_shows_it() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.change_password(b, sessions, user_id=UID, password="new one 22",
                                             read=caught_up(b), wait_s=WAIT)
    assert isinstance(outcome, handlers.Done)
    assert sessions.calls == [("end-sessions", UID)]
    ((credential, _),) = sessions.credentials.passwords
    assert sessions.credentials.pruned == [credential]


@pytest.mark.asyncio
async def test_an_undecided_password_change_still_ends_sessions_but_prunes_nothing() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    b.undecided.add("user.change-password")
    outcome = await handlers.change_password(b, sessions, user_id=UID, password="new one 22",
                                             read=caught_up(b), wait_s=WAIT)
    assert isinstance(outcome, Pending)
    assert sessions.calls == [("end-sessions", UID)] and sessions.credentials.pruned == []


@pytest.mark.asyncio
async def test_a_rehash_after_login_ends_no_session() -> None:
    b, sessions = bus(), FakeSessions()
    await registered(b)
    outcome = await handlers.change_password(b, sessions, user_id=UID, password="same one 22",
                                             read=caught_up(b), rehash=True, wait_s=WAIT)
    assert isinstance(outcome, handlers.Done) and sessions.calls == []
    assert b.sent[-1].payload["rehash"] is True


@pytest.mark.asyncio
async def test_a_refused_password_change_ends_no_session() -> None:
    b, sessions = bus(), FakeSessions()  # nobody registered: refused
    outcome = await handlers.change_password(b, sessions, user_id=UID, password="new one 22",
                                             read=caught_up(b), wait_s=WAIT)
    assert isinstance(outcome, Rejected) and sessions.calls == []
