"""A loopback WebSocket server that replays a venue tape, with scripted faults.

Each subscribe frame a client sends (re)starts the replay: the n-th subscribe gets
`tapes[min(n, len(tapes) - 1)]`, so a resync can be served a clean tape after a gappy one.
Faults apply to the first `fault_connections` connections only, so a client that reconnects
sees a healthy server. A later connection resumes at the frame the last one reached, less
`overlap` frames (resent, as venues do after a reconnect), or restarts with `resume="restart"`.
Ping frames are answered by the websockets layer; the text keepalive "PING" gets "PONG".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

Frame = str | bytes


def read_tape(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def is_subscribe(message: Frame) -> bool:
    """Binance SUBSCRIBE, Kalshi `cmd: subscribe`, Polymarket `type: market`."""
    try:
        obj = json.loads(message)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    return (
        obj.get("method") == "SUBSCRIBE"
        or obj.get("cmd") == "subscribe"
        or (str(obj.get("type", "")).lower() == "market" and "assets_ids" in obj)
    )


@dataclass(frozen=True, kw_only=True)
class Faults:
    drop_after: int | None = None  # abort the TCP connection after this many frames
    stall_after: int | None = None  # then go silent (connection open) for stall_s
    stall_s: float = 0.0
    inject: dict[int, list[Frame]] = field(default_factory=dict)  # extra frames before index
    skip_first_pass: frozenset[int] = frozenset()  # tape indexes left out on subscribe #0
    fault_connections: int = 1
    resume: Literal["continue", "restart"] = "continue"
    overlap: int = 0


class ReplayServer:
    """`async with ReplayServer(tapes) as server:` then connect to `server.url`."""

    def __init__(
        self,
        tapes: Sequence[Sequence[str]],
        *,
        faults: Faults | None = None,
        interval_s: float = 0.0,
        subscribe: Callable[[Frame], bool] = is_subscribe,
    ) -> None:
        self._tapes = [list(tape) for tape in tapes]
        self._faults = faults or Faults()
        self._interval_s = interval_s
        self._is_subscribe = subscribe
        self._server: Server | None = None
        self._cursor = 0
        self.received: list[Frame] = []
        self.subscribes: list[Frame] = []
        self.connections = 0
        self.frames_sent = 0
        self.finished = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/stream"

    async def __aenter__(self) -> ReplayServer:
        self._server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws: ServerConnection) -> None:
        connection = self.connections
        self.connections += 1
        streaming: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                self.received.append(message)
                if message == "PING":
                    await ws.send("PONG")
                elif self._is_subscribe(message):
                    self.subscribes.append(message)
                    if streaming is not None:
                        streaming.cancel()
                    streaming = asyncio.create_task(
                        self._stream(ws, connection, len(self.subscribes) - 1)
                    )
        except ConnectionClosed:
            pass
        finally:
            if streaming is not None:
                streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await streaming

    async def _stream(self, ws: ServerConnection, connection: int, subscription: int) -> None:
        faults = self._faults
        faulty = connection < faults.fault_connections
        tape = self._tapes[min(subscription, len(self._tapes) - 1)]
        start = 0
        if connection > 0 and faults.resume == "continue":
            start = max(0, self._cursor - faults.overlap)
        sent = 0
        try:
            for index in range(start, len(tape)):
                if subscription == 0 and index in faults.skip_first_pass:
                    continue
                if faulty:
                    for extra in faults.inject.get(index, []):
                        await ws.send(extra)
                    if faults.drop_after is not None and sent == faults.drop_after:
                        ws.transport.abort()  # no close frame: the client sees a dead socket
                        return
                    if faults.stall_after is not None and sent == faults.stall_after:
                        await asyncio.sleep(faults.stall_s)
                await ws.send(tape[index])
                sent += 1
                self.frames_sent += 1
                self._cursor = index + 1
                if self._interval_s:
                    await asyncio.sleep(self._interval_s)
            self.finished.set()
        except ConnectionClosed:
            return
