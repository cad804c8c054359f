"""The gateway's Redis: bounded channel histories with their epoch and floor, market watch
lists per session, and the instrument ids of binary frames.

Several gateway instances write the same history: a message's member and score are the same
bytes in each (derived from its log position), so a second ZADD changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

from ws_gateway.domain.resume import HistoryState
from ws_gateway.exceptions import InstrumentIdsExhausted

# KEYS: per channel its history zset and meta hash. ARGV: maxlen, ttl, then per channel: a
# candidate epoch, the entry count n, then n (seq, member) pairs. Returns the epochs.
_APPEND = """
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local i = 3
local epochs = {}
for k = 1, #KEYS, 2 do
  local h, m = KEYS[k], KEYS[k + 1]
  redis.call('HSETNX', m, 'epoch', ARGV[i])
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for j = 1, n do
    redis.call('ZADD', h, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local size = redis.call('ZCARD', h)
  if size > maxlen then
    local cut = redis.call('ZRANGE', h, size - maxlen - 1, size - maxlen - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', h, 0, size - maxlen - 1)
    local floor = tonumber(redis.call('HGET', m, 'floor') or '0')
    if tonumber(cut[2]) > floor then redis.call('HSET', m, 'floor', cut[2]) end
  end
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', m, ttl)
  epochs[#epochs + 1] = redis.call('HGET', m, 'epoch')
end
return epochs
"""

_INSTRUMENT_ID = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('HLEN', KEYS[1]) + 1
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"""


class GatewayStore:
    def __init__(self, redis: Redis, namespace: str, *, history_size: int, history_ttl_s: int,
                 watch_ttl_s: int) -> None:
        self.redis = redis
        self.prefix = f"{namespace or '-'}:ws"
        self.history_size = history_size
        self.history_ttl_s = history_ttl_s
        self.watch_ttl_s = watch_ttl_s
        self._append = redis.register_script(_APPEND)
        self._instrument_id = redis.register_script(_INSTRUMENT_ID)

    def _keys(self, channel: str) -> tuple[str, str]:
        return f"{self.prefix}:hist:{channel}", f"{self.prefix}:meta:{channel}"

    async def append(self, batches: Iterable[tuple[str, Sequence[tuple[int, bytes]]]]
                     ) -> dict[str, int]:
        """Add each channel's (seq, message) entries, trim, and return the channels' epochs."""
        keys: list[str] = []
        args: list[int | bytes | str] = [self.history_size, self.history_ttl_s]
        channels: list[str] = []
        for channel, entries in batches:
            channels.append(channel)
            keys.extend(self._keys(channel))
            args.extend((secrets.randbelow(2**32 - 1) + 1, len(entries)))
            for seq, member in entries:
                args.extend((seq, member))
        if not channels:
            return {}
        epochs = await self._append(keys=keys, args=args)
        return {c: int(e) for c, e in zip(channels, epochs, strict=True)}

    async def history(self, channel: str, *, after: int) -> HistoryState:
        hist, meta = self._keys(channel)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(meta, "epoch", "floor")
            pipe.zrangebyscore(hist, f"({after}", "+inf", withscores=True)
            (epoch, floor), entries = await pipe.execute()
        return HistoryState(epoch=int(epoch or 0), floor=int(floor or 0),
                            entries=[(int(score), member) for member, score in entries])

    async def latest(self, channel: str) -> tuple[int, int, bytes | None]:
        """(epoch, seq, message) of the newest message of `channel` (0, 0, None if none)."""
        hist, meta = self._keys(channel)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(meta, "epoch")
            pipe.zrange(hist, -1, -1, withscores=True)
            epoch, last = await pipe.execute()
        if not last:
            return int(epoch or 0), 0, None
        member, score = last[0]
        return int(epoch or 0), int(score), member

    async def instrument_id(self, symbol: str) -> int:
        ident = int(await self._instrument_id(keys=[f"{self.prefix}:instrument-ids"],
                                              args=[symbol]))
        if ident > 0xFFFF:
            raise InstrumentIdsExhausted(f"{symbol}: instrument id {ident} beyond 65535")
        return ident

    def _watch_key(self, owner: str, session: str) -> str:
        return f"{self.prefix}:watch:{owner}:{session}"

    async def watch_list(self, owner: str, session: str) -> list[str]:
        members = await self.redis.smembers(self._watch_key(owner, session))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def watch(self, owner: str, session: str, channel: str, *, on: bool) -> None:
        key = self._watch_key(owner, session)
        async with self.redis.pipeline(transaction=True) as pipe:
            if on:
                pipe.sadd(key, channel)
            else:
                pipe.srem(key, channel)
            pipe.expire(key, self.watch_ttl_s)
            await pipe.execute()
