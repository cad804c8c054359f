"""The identity service's moving parts, built once per API process and kept on app.state.

Password hashing runs on a small thread pool sized to the cores (argon2-cffi releases the
GIL), never on the event loop, and the pool bounds how much argon2 memory is in use at once.

Role changes take effect at once, whatever the read model's lag. Per user, Redis holds:

* `role-epoch`: incremented when a role change is *sent*, before anything else happens;
* `role-pending`: that epoch, while the change is undecided (it expires on its own, so a
  change whose answer was lost cannot lock the user out for longer than the wait);
* `role`: `<version> <role>` of the newest *decided* change (the read model may lag it).

A token is issued only after any not-before wait, with no change pending, with the newest
role of the read model and of `role` (by aggregate version), and only if the epoch did not
move while it was made; otherwise it is made again. Every token made before the epoch moved
has an `iat` before the not-before mark set right after the move, so it dies with the mark.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.adapters.credentials import CredentialStore
from core.adapters.refresh_tokens import RefreshTokenStore
from core.config import CoreSettings as Settings
from core.domain.passwords import Passwords
from core.exceptions import CoreError
from kernel.auth import mark_not_before, not_before_key, role_decided_key, role_pending_key
from kernel.observability import get_logger
from kernel.sealing import KeyWrapper
from kernel.tokens import AccessTokens
from schemas.identity import Role
from schemas.replies import CommandReply

log = get_logger(__name__)

# KEYS[1]: `role`, KEYS[2]: `role-pending`; ARGV: version, role, epoch, ttl (s).
# Record the decided role unless a newer one is there; end the pending mark of this epoch.
_ROLE_DECIDED = """
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(string.match(cur, '^(%d+)')) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EX', tonumber(ARGV[4]))
end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# KEYS[1]: `role-epoch`, KEYS[2]: `role-pending`; ARGV: their TTLs (s). Move the epoch and
# mark the change pending with it; return the epoch.
_ROLE_SENT = """
local epoch = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('SET', KEYS[2], tostring(epoch), 'EX', tonumber(ARGV[2]))
return epoch
"""
# KEYS[1]: `role-pending`; ARGV[1]: epoch. End the pending mark when it is still this one.
_ROLE_SETTLED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# The role and aggregate version a read model gives for a user, or None: no such user.
RoleLookup = Callable[[], Awaitable[tuple[Role, int] | None]]


class RoleChangePending(CoreError):
    """A role change of the user is undecided: no token may be issued until it is."""


class UserGone(CoreError):
    """The user a token would be issued for is not in the read model."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class Identity:
    """Hash and verify passwords off the loop; issue token pairs; revoke sessions."""

    def __init__(self, settings: Settings, redis: Redis, pool: AsyncConnectionPool, *,
                 passwords: Passwords | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.passwords = passwords or Passwords()
        # Password and API-key hashes and users' data keys: kept here, never on the log.
        self.wrapper = KeyWrapper(settings.data_key_secret.get_secret_value())
        self.credentials = CredentialStore(pool, self.wrapper)
        self.access = AccessTokens(secret=settings.secret_key,
                                   ttl=timedelta(seconds=settings.access_token_ttl_s))
        self.refresh = RefreshTokenStore(redis, namespace=settings.namespace,
                                         ttl=timedelta(seconds=settings.refresh_family_ttl_s))
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                        thread_name_prefix="argon2")
        self._dummy_hash: str | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.credentials.ensure_tables(self.settings)
        # Verified against for unknown emails, so they cost what a wrong password costs.
        self._dummy_hash = await self.hash(uuid.uuid4().hex)

    def stop(self) -> None:
        for task in self._background:
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run best-effort work past the answer, keeping a reference so it is not collected."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.passwords.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash, spend the same time and say no."""
        if password_hash is None:
            assert self._dummy_hash is not None, "Identity.start() was not awaited"
            await asyncio.get_running_loop().run_in_executor(
                self._pool, self.passwords.verify, self._dummy_hash, password)
            return False
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.passwords.verify, password_hash, password)

    async def issue(self, user_id: str, lookup: RoleLookup) -> TokenPair:
        """A new login: an access token and the first refresh token of a new family."""
        access = await self.access_token(user_id, lookup)
        refresh = await self.refresh.start(user_id, now=datetime.now(UTC))
        return TokenPair(access, refresh, int(self.access.ttl.total_seconds()))

    async def access_token(self, user_id: str, lookup: RoleLookup) -> str:
        """An access token carrying the user's current role, usable at once.

        The role is read after any not-before wait, and the token is made again when a role
        change was sent meanwhile. Raises RoleChangePending or UserGone.
        """
        await self._after_not_before(user_id)
        for _ in range(3):
            epoch, recorded = await self._role_state(user_id)
            found = await lookup()
            if found is None:
                raise UserGone(user_id)
            role, version = found
            if recorded is not None and recorded[0] > version:
                role = recorded[1]
            token = self.access.issue(subject=user_id, role=role, now=datetime.now(UTC),
                                      jti=uuid.uuid4())
            if await self.redis.get(self._key("role-epoch", user_id)) == epoch:
                return token
        raise RoleChangePending(user_id)

    async def _role_state(self, user_id: str) -> tuple[Any, tuple[int, Role] | None]:
        """The role epoch and the newest decided role, once no role change is pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.role_change_wait_s
        while True:
            epoch, pending, recorded = await self.redis.mget(
                self._key("role-epoch", user_id), self._key("role-pending", user_id),
                self._key("role", user_id))
            if pending is None:
                break
            if loop.time() >= deadline:
                raise RoleChangePending(user_id)
            await asyncio.sleep(0.05)
        if recorded is None:
            return epoch, None
        text = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
        version, _, role = text.partition(" ")
        return epoch, (int(version), role)  # type: ignore[return-value]

    def _key(self, kind: str, user_id: str) -> str:
        # kernel.auth reads two of them for API keys: one spelling for both.
        if kind == "role-pending":
            return role_pending_key(self.settings.namespace, user_id)
        if kind == "role":
            return role_decided_key(self.settings.namespace, user_id)
        return f"{self.settings.namespace or '-'}:auth:{kind}:{user_id}"

    async def role_change_sent(self, user_id: str) -> int:
        """Before a role change is published: no token with the old role from now on.

        Returns the change's epoch, to settle it with once its decision is known.
        """
        # One step: no token request sees the new epoch without the pending mark.
        epoch = int(await self.redis.eval(
            _ROLE_SENT, 2, self._key("role-epoch", user_id), self._key("role-pending", user_id),
            str(self.settings.refresh_family_ttl_s), str(self.settings.role_change_pending_s)))
        # The mark after the epoch moved: a token made before the move has an older iat.
        await self.end_sessions(user_id)
        return epoch

    async def role_change_decided(self, user_id: str, *, epoch: int, role: Role,
                                  version: int) -> None:
        """The change of `epoch` is decided: its role is what every token carries now."""
        await self.redis.eval(_ROLE_DECIDED, 2, self._key("role", user_id),
                              self._key("role-pending", user_id), str(version), role,
                              str(epoch), str(self.settings.refresh_family_ttl_s))
        # Again: tokens made in the second of the first mark, or sessions opened since.
        await self.end_sessions(user_id)

    async def role_change_settled(self, user_id: str, *, epoch: int) -> None:
        """The change of `epoch` was refused: tokens may be issued again."""
        await self.redis.eval(_ROLE_SETTLED, 1, self._key("role-pending", user_id), str(epoch))

    async def settle_role_change_later(self, user_id: str, *, epoch: int, role: Role,
                                       reply: Callable[[], CommandReply | None]) -> None:
        """For a change answered 202: settle it when its reply comes (polled), within the
        pending mark's lifetime; after that the mark has expired and the read model rules."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.role_change_pending_s
        try:
            while loop.time() < deadline:
                decided = reply()
                if decided is not None:
                    if decided.status == "accepted":
                        version = max((int(e["sequence"]) for e in decided.events), default=0)
                        await self.role_change_decided(user_id, epoch=epoch, role=role,
                                                       version=version)
                    else:
                        await self.role_change_settled(user_id, epoch=epoch)
                    return
                await asyncio.sleep(0.1)
        except Exception as exc:  # best effort: the pending mark expires on its own
            log.warning("role change not settled", user_id=user_id, error=str(exc))

    async def end_sessions(self, user_id: str) -> None:
        """Kill every access token issued so far and every refresh family of the user."""
        await self.refresh.revoke_user(user_id)
        await self.refuse_tokens_issued_now(user_id)

    async def refuse_tokens_issued_now(self, user_id: str) -> None:
        # Tokens carry whole seconds: everything issued up to the end of this second dies.
        now = datetime.now(UTC)
        mark = now.replace(microsecond=0) + timedelta(seconds=1)
        await mark_not_before(self.redis, self.settings.namespace, user_id, at=mark,
                              ttl_s=int(self.access.ttl.total_seconds()) + 2)

    async def _after_not_before(self, user_id: str) -> None:
        """Wait (under a second) until a fresh not-before mark lies in the past.

        A token issued in the same second as the mark would be refused at once.
        """
        raw = await self.redis.get(not_before_key(self.settings.namespace, user_id))
        if raw is None:
            return
        wait = int(raw) - datetime.now(UTC).timestamp()
        if 0 < wait <= 2:
            await asyncio.sleep(wait)
