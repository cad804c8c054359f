"""Latest price, bid and ask per instrument and a short window of recent ticks, in Redis.

Writes are idempotent and never go back in time: a replayed (older) tick leaves a newer
latest price alone, and the recent window is a sorted set keyed by venue time, so the same
tick written twice is one member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as redis

from schemas.market import MarketTicksPublished

WINDOW = 200  # recent ticks kept per instrument

# KEYS[1] latest hash, KEYS[2] recent zset, KEYS[3] instrument set;
# ARGV: ts, price, bid, ask, venue, instrument, window, then score/member pairs.
_UPDATE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'ts') or '-1')
local ts = tonumber(ARGV[1])
if ts >= current then
  redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'price', ARGV[2], 'venue', ARGV[5])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'bid', ARGV[3], 'ask', ARGV[4]) end
end
redis.call('SADD', KEYS[3], ARGV[6])
for i = 8, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[7]) - 1)
return ts >= current and 1 or 0
"""


@dataclass(frozen=True)
class LatestPrice:
    instrument: str
    price: float
    bid: float | None
    ask: float | None
    venue: str
    ts_ns: int


class PriceStore:
    def __init__(self, client: redis.Redis, *, namespace: str = "", window: int = WINDOW) -> None:
        self.client = client
        self.prefix = f"{namespace}:" if namespace else ""
        self.window = window
        self._script = client.register_script(_UPDATE)

    def _keys(self, instrument: str) -> list[str]:
        return [f"{self.prefix}price:{instrument}", f"{self.prefix}ticks:{instrument}",
                f"{self.prefix}instruments"]

    async def apply(self, batches: list[MarketTicksPublished]) -> None:
        """Write a consumed set of batches: one script call per instrument, pipelined."""
        by_instrument: dict[str, list[Any]] = {}
        for batch in batches:
            by_instrument.setdefault(batch.instrument, []).append(batch)
        async with self.client.pipeline(transaction=False) as pipe:
            for instrument, group in by_instrument.items():
                rows = [(b.venue, r) for b in group for r in b.ticks]
                venue, last = max(rows, key=lambda vr: vr[1].venue_ts_ns)
                quoted = [r for _, r in rows if r.bid is not None and r.ask is not None]
                quote = max(quoted, key=lambda r: r.venue_ts_ns) if quoted else None
                recent = rows[-self.window:]
                args: list[Any] = [last.venue_ts_ns, repr(last.price),
                                   "" if quote is None else repr(quote.bid),
                                   "" if quote is None else repr(quote.ask), venue, instrument,
                                   self.window]
                for v, row in recent:
                    args += [row.venue_ts_ns, orjson.dumps(
                        {"ts_ns": row.venue_ts_ns, "price": row.price, "size": row.size,
                         "side": row.side, "trade_id": row.trade_id, "venue": v})]
                await self._script(keys=self._keys(instrument), args=args, client=pipe)
            await pipe.execute()

    async def latest(self, instrument: str) -> LatestPrice | None:
        data = await self.client.hgetall(self._keys(instrument)[0])
        return _latest(instrument, data) if data else None

    async def all_latest(self) -> list[LatestPrice]:
        members = await self.client.smembers(self._keys("")[2])
        instruments = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        async with self.client.pipeline(transaction=False) as pipe:
            for instrument in instruments:
                pipe.hgetall(self._keys(instrument)[0])
            rows = await pipe.execute()
        return [_latest(i, d) for i, d in zip(instruments, rows, strict=True) if d]

    async def recent(self, instrument: str, limit: int) -> list[dict[str, Any]]:
        members = await self.client.zrange(self._keys(instrument)[1], -limit, -1)
        return [orjson.loads(m) for m in members if isinstance(m, bytes | str)]


def _latest(instrument: str, data: Mapping[Any, Any]) -> LatestPrice:
    def opt(key: bytes) -> float | None:
        value = data.get(key, b"")
        return float(value) if value else None

    return LatestPrice(instrument, float(data[b"price"]), opt(b"bid"), opt(b"ask"),
                       data[b"venue"].decode(), int(data[b"ts"]))
