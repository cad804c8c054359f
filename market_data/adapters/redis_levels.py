"""ATH/ATL, Enigma level and Fibonacci levels per instrument, kept live in Redis."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis


class LevelsStore:
    def __init__(self, client: redis.Redis, *, namespace: str = "") -> None:
        self.client = client
        self.prefix = f"{namespace}:" if namespace else ""

    def _key(self, instrument: str) -> str:
        return f"{self.prefix}levels:{instrument}"

    async def put_many(self, levels: dict[str, dict[str, Any]]) -> None:
        if not levels:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for instrument, data in levels.items():
                pipe.set(self._key(instrument), orjson.dumps(data))
            await pipe.execute()

    async def get(self, instrument: str) -> dict[str, Any] | None:
        raw = await self.client.get(self._key(instrument))
        if not isinstance(raw, bytes | str):
            return None
        data: dict[str, Any] = orjson.loads(raw)
        return data
