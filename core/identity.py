"""The identity service's moving parts, built once per API process and kept on app.state.

Password hashing runs on a small thread pool sized to the cores (argon2-cffi releases the
GIL), never on the event loop, and the pool bounds how much argon2 memory is in use at once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.adapters.credentials import CredentialStore
from core.adapters.refresh_tokens import RefreshTokenStore
from core.domain.passwords import Passwords
from kernel.auth import mark_not_before, not_before_key
from kernel.sealing import KeyWrapper
from kernel.settings import Settings
from kernel.tokens import AccessTokens
from schemas.identity import Role


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

    async def issue(self, user_id: str, role: Role) -> TokenPair:
        """A new login: an access token and the first refresh token of a new family."""
        await self._after_not_before(user_id)
        now = datetime.now(UTC)
        access = self.access.issue(subject=user_id, role=role, now=now, jti=uuid.uuid4())
        refresh = await self.refresh.start(user_id, now=now)
        return TokenPair(access, refresh, int(self.access.ttl.total_seconds()))

    async def access_token(self, user_id: str, role: Role) -> str:
        """An access token for a refresh: usable at once, like a login's."""
        await self._after_not_before(user_id)
        return self.access.issue(subject=user_id, role=role, now=datetime.now(UTC),
                                 jti=uuid.uuid4())

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
