"""A lean asyncio HTTP/1.1 keep-alive client for benchmarks (no TLS, no chunked requests).

httpx spends ~10 ms of CPU per request on this machine's shared cores (the client of
`bench.command_round_trip` saturated at 48.6 req/s); this one writes a request with one
`write` on an idle keep-alive connection and reads the answer by Content-Length, ~0.1 ms of
CPU. Connections are opened on demand, so an open-loop schedule never queues behind a slow
answer; idle ones are reused last-in first-out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


class LeanClient:
    """POST/GET JSON to one host:port over a pool of keep-alive connections."""

    def __init__(self, host: str, port: int, *, headers: dict[str, str] | None = None,
                 max_connections: int = 400) -> None:
        self.host, self.port = host, port
        self.base = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.max_connections = max_connections
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self._slots = asyncio.Semaphore(max_connections)

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()

    async def request(self, method: str, path: str, *, json: object | None = None,
                      headers: dict[str, str] | None = None) -> Answer:
        body = b"" if json is None else orjson.dumps(json)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.base}{extra}"
                f"Content-Length: {len(body)}\r\n"
                + ("Content-Type: application/json\r\n" if json is not None else "") + "\r\n")
        data = head.encode() + body
        async with self._slots:
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await self._open()
            try:
                writer.write(data)
                answer, keep = await _read_answer(reader)
            except asyncio.IncompleteReadError as exc:
                writer.close()
                if not reused or exc.partial:
                    raise
                # The server closed an idle keep-alive connection (uvicorn: after 5 s) before
                # reading this request: nothing was done, send it on a fresh connection.
                reader, writer = await self._open()
                try:
                    writer.write(data)
                    answer, keep = await _read_answer(reader)
                except BaseException:
                    writer.close()
                    raise
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return answer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, *, json: object, headers: dict[str, str] | None = None
                   ) -> Answer:
        return await self.request("POST", path, json=json, headers=headers)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Answer:
        return await self.request("GET", path, headers=headers)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        data = bytes(body)
    else:
        data = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    return Answer(status, headers, data), keep
