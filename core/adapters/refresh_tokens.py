"""Refresh-token families in Redis, rotated atomically, revocable per family or per user.

A family is one hash `<ns>:auth:rf:<family id>` that expires with the family, and each user
has a set `<ns>:auth:user-rf:<user id>` of their family ids, so a password change or "logout
everywhere" can revoke them all. The decision (newest token? older one? guess?) is the pure
`kernel.tokens.rotate`; this adapter only makes its outcome stick atomically: a rotation is a
compare-and-set on the hash the decision was made from. Two concurrent refreshes with the
same token both decide "rotate", one CAS wins, and the loser's token is by then an older
generation: that is reuse, and the family is revoked, which kills the winner's new token too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from kernel.tokens import (
    REFRESH_FAMILY_TTL,
    RefreshFamily,
    RefreshRejected,
    Rotated,
    TokenReused,
    new_secret,
    parse_refresh_token,
    rotate,
    start_family,
)

# KEYS[1]: the family; ARGV: hash the rotation was decided from, new hash, new generation.
# 1 = rotated; 0 = the family moved on (or was revoked) meanwhile.
_CAS = """
local f = redis.call('HMGET', KEYS[1], 'current_hash', 'revoked')
if f[1] == ARGV[1] and f[2] == '0' then
  redis.call('HSET', KEYS[1], 'current_hash', ARGV[2], 'generation', ARGV[3])
  return 1
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Unknown:
    """No such family: never issued, or expired long enough ago that Redis dropped it."""


RefreshOutcome = Rotated | TokenReused | RefreshRejected | Unknown


class RefreshTokenStore:
    def __init__(self, redis: Redis, *, namespace: str,
                 ttl: timedelta = REFRESH_FAMILY_TTL) -> None:
        self.redis = redis
        self.prefix = f"{namespace or '-'}:auth:"
        self.ttl = ttl
        self._cas = redis.register_script(_CAS)

    def _family_key(self, family_id: uuid.UUID) -> str:
        return f"{self.prefix}rf:{family_id.hex}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user-rf:{user_id}"

    async def start(self, user_id: str, *, now: datetime) -> str:
        """Open a family for a login; return its first refresh token."""
        token, family = start_family(family_id=uuid.uuid4(), user_id=user_id,
                                     secret=new_secret(), now=now, ttl=self.ttl)
        key = self._family_key(family.family_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user_id": user_id, "current_hash": family.current_hash,
                                    "generation": family.generation, "revoked": "0",
                                    "expires_at": int(family.expires_at.timestamp())})
            pipe.expireat(key, family.expires_at)
            pipe.sadd(self._user_key(user_id), family.family_id.hex)
            # The set outlives every family in it (a family lives at most `ttl`).
            pipe.expire(self._user_key(user_id), int(self.ttl.total_seconds()))
            await pipe.execute()
        return token

    async def load(self, family_id: uuid.UUID) -> RefreshFamily | None:
        raw = await self.redis.hgetall(self._family_key(family_id))
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return RefreshFamily(family_id=family_id, user_id=data["user_id"],
                             current_hash=data["current_hash"],
                             generation=int(data["generation"]), revoked=data["revoked"] == "1",
                             expires_at=datetime.fromtimestamp(int(data["expires_at"]), UTC))

    async def refresh(self, presented: str, *, now: datetime) -> RefreshOutcome:
        """Exchange a refresh token for the next one of its family, or say why not."""
        claimed = parse_refresh_token(presented)
        if claimed is None:
            return RefreshRejected("malformed")
        family = await self.load(claimed[0])
        if family is None:
            return Unknown()
        outcome = rotate(family, presented, new_secret=new_secret(), now=now)
        if isinstance(outcome, Rotated):
            won = await self._cas(keys=[self._family_key(family.family_id)],
                                  args=[family.current_hash, outcome.family.current_hash,
                                        outcome.family.generation])
            if not int(won):
                # Rotated by a concurrent request with this very token, or revoked meanwhile.
                await self.revoke_family(family.family_id)
                return TokenReused(family)
        elif isinstance(outcome, TokenReused):
            await self.revoke_family(family.family_id)
        return outcome

    async def end(self, presented: str, *,
                  now: datetime) -> RefreshFamily | TokenReused | RefreshRejected | Unknown:
        """Revoke the family of a presented token (logout); the family when it was the newest.

        An older token of the family revokes it too, and says so: it leaked.
        """
        claimed = parse_refresh_token(presented)
        if claimed is None:
            return RefreshRejected("malformed")
        family = await self.load(claimed[0])
        if family is None:
            return Unknown()
        # The same checks as a refresh; the token it would rotate to is thrown away.
        verdict = rotate(family, presented, new_secret=new_secret(), now=now)
        if isinstance(verdict, RefreshRejected):
            return verdict
        await self.revoke_family(family.family_id)
        return family if isinstance(verdict, Rotated) else verdict

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        key = self._family_key(family_id)
        # Only an existing hash: HSET on a dropped one would recreate it without a TTL.
        if await self.redis.exists(key):
            await self.redis.hset(key, "revoked", "1")

    async def revoke_user(self, user_id: str) -> int:
        """Revoke every family of a user (password change, logout everywhere)."""
        members = await self.redis.smembers(self._user_key(user_id))
        for member in members:
            await self.revoke_family(uuid.UUID(hex=_text(member)))
        await self.redis.delete(self._user_key(user_id))
        return len(members)
