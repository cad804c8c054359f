"""A reconnecting WebSocket client that drives any `VenueFeed`.

One connection at a time: connect, subscribe, read. Ping frames are sent by the websockets
layer, which also answers the venue's pings and closes the connection when a pong is late;
venues that want an application keepalive get it every `heartbeat_interval_s`. A staleness
watchdog reconnects when no frame arrives for `stale_after_s`; a connection older than
`max_connection_age_s` is left before the venue cuts it (Binance: 24 h). Between attempts
the client waits an exponential backoff with full jitter, reset once a connection has stayed
up for `stable_after_s`. Frames that do not parse are counted and handed, raw, to
`on_dead_letter`; a sequence gap sends the feed's resync frames; trades are deduplicated by
venue trade id before `on_ticks` sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from kernel.observability import get_logger
from market_data.adapters.venues import metrics
from market_data.adapters.venues.backoff import Backoff
from market_data.domain.ticks import Tick
from market_data.domain.venues.common import GapDetected, ParseError, ParseResult, Resolution
from market_data.domain.venues.dedupe import Deduper
from market_data.domain.venues.feed import VenueFeed

log = get_logger(__name__)

OnTicks = Callable[[list[Tick]], Awaitable[None]]
OnResolutions = Callable[[list[Resolution]], Awaitable[None]]
OnDeadLetter = Callable[[bytes, str], Awaitable[None] | None]
Sleep = Callable[[float], Awaitable[None]]
Cause = Literal["stop", "stale", "max-age", "closed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    url: str
    backoff: Backoff = field(default_factory=Backoff)
    stable_after_s: float = 30.0
    stale_after_s: float = 30.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    heartbeat_interval_s: float = 10.0
    max_connection_age_s: float | None = 23.0 * 3600.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 1.0
    max_frame_bytes: int = 4 * 1024 * 1024


@dataclass(slots=True)
class ClientStats:
    """What happened so far; tests read it, metrics carry the same counts to Prometheus."""

    connects: int = 0
    frames: int = 0
    ticks: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    gaps: int = 0
    resolutions: int = 0
    disconnects: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)


class VenueClient:
    """Keep one venue feed flowing until `stop` is set."""

    def __init__(
        self,
        feed: VenueFeed,
        *,
        config: ClientConfig,
        on_ticks: OnTicks,
        on_dead_letter: OnDeadLetter | None = None,
        on_resolutions: OnResolutions | None = None,
        deduper: Deduper | None = None,
        rng: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
        clock_ns: Callable[[], int] = time.time_ns,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._feed = feed
        self._config = config
        self._on_ticks = on_ticks
        self._on_dead_letter = on_dead_letter
        self._on_resolutions = on_resolutions
        self._deduper = deduper or Deduper()
        self._rng = rng
        self._sleep = sleep
        self._clock_ns = clock_ns
        self._headers = headers
        self._venue = feed.venue
        self._opened_at: float | None = None
        self.stats = ClientStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read and reconnect until `stop` is set."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while not stop.is_set():
            self._opened_at = None
            cause: str
            try:
                cause = await self._connection(stop)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                cause = "stop" if stop.is_set() else type(exc).__name__
                if cause != "stop":
                    log.warning("venue connection lost", venue=self._venue, error=repr(exc))
            if stop.is_set() or cause == "stop":
                return
            self.stats.disconnects.append(cause)
            metrics.RECONNECTS.labels(self._venue, cause).inc()
            lived = 0.0 if self._opened_at is None else loop.time() - self._opened_at
            if lived >= self._config.stable_after_s or cause == "max-age":
                attempt = 0
            delay = self._config.backoff.delay(attempt, self._rng)
            attempt += 1
            self.stats.delays.append(delay)
            metrics.BACKOFF_SECONDS.labels(self._venue).observe(delay)
            log.info("venue reconnecting", venue=self._venue, cause=cause, delay_s=delay)
            await self._pause(delay, stop)

    async def _pause(self, delay: float, stop: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _connection(self, stop: asyncio.Event) -> Cause:
        cfg = self._config
        loop = asyncio.get_running_loop()
        async with connect(
            cfg.url,
            additional_headers=dict(self._headers()) if self._headers else None,
            open_timeout=cfg.open_timeout_s,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            close_timeout=cfg.close_timeout_s,
            max_size=cfg.max_frame_bytes,
        ) as ws:
            self._opened_at = opened_at = loop.time()
            self.stats.connects += 1
            self._feed.reset()
            for message in self._feed.subscribe_messages():
                await ws.send(message)
            helpers = [asyncio.create_task(self._close_on_stop(ws, stop))]
            heartbeat = self._feed.heartbeat_message()
            if heartbeat is not None:
                helpers.append(asyncio.create_task(self._heartbeat(ws, heartbeat)))
            try:
                while True:
                    timeout = cfg.stale_after_s
                    if cfg.max_connection_age_s is not None:
                        left = cfg.max_connection_age_s - (loop.time() - opened_at)
                        if left <= 0:
                            return "max-age"
                        timeout = min(timeout, left)
                    try:
                        async with asyncio.timeout(timeout):
                            raw = await ws.recv()
                    except TimeoutError:
                        if cfg.max_connection_age_s is not None and (
                            loop.time() - opened_at >= cfg.max_connection_age_s
                        ):
                            return "max-age"
                        log.warning("venue feed stale", venue=self._venue, after_s=timeout)
                        return "stale"
                    await self._handle(ws, raw)
            except ConnectionClosed:
                if stop.is_set():
                    return "stop"
                raise
            finally:
                for task in helpers:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    @staticmethod
    async def _close_on_stop(ws: ClientConnection, stop: asyncio.Event) -> None:
        await stop.wait()
        await ws.close()

    async def _heartbeat(self, ws: ClientConnection, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self._config.heartbeat_interval_s)
                await ws.send(message)

    async def _handle(self, ws: ClientConnection, raw: bytes | str) -> None:
        received = self._clock_ns()
        self.stats.frames += 1
        result: ParseResult
        try:
            result = self._feed.parse(raw, received)
        except Exception as exc:  # a parser bug must not stop the feed: dead-letter and go on
            log.exception("venue parser failed", venue=self._venue)
            result = ParseError("internal-error", repr(exc)[:200])
        if isinstance(result, ParseError):
            await self._dead_letter(raw, result)
        elif isinstance(result, GapDetected):
            self.stats.gaps += 1
            metrics.GAPS.labels(self._venue).inc()
            metrics.FRAMES.labels(self._venue, "gap").inc()
            log.warning("venue sequence gap", venue=self._venue, sid=result.sid,
                        expected=result.expected, received=result.received)
            for message in self._feed.resync_messages(result):
                await ws.send(message)
        else:
            metrics.FRAMES.labels(self._venue, "ok").inc()
            fresh = [tick for tick in result
                     if isinstance(tick, Tick) and not self._is_duplicate(tick)]
            if fresh:
                self.stats.ticks += len(fresh)
                await self._on_ticks(fresh)
            resolutions = [r for r in result if isinstance(r, Resolution)]
            if resolutions:
                self.stats.resolutions += len(resolutions)
                log.info("venue resolution", venue=self._venue,
                         markets={r.instrument: r.outcome for r in resolutions})
                if self._on_resolutions is not None:
                    await self._on_resolutions(resolutions)

    def _is_duplicate(self, tick: Tick) -> bool:
        if tick.trade_id is None or not self._deduper.is_duplicate(tick.instrument,
                                                                    tick.trade_id):
            return False
        self.stats.duplicates += 1
        metrics.DUPLICATES.labels(self._venue).inc()
        return True

    async def _dead_letter(self, raw: bytes | str, error: ParseError) -> None:
        self.stats.dead_letters += 1
        metrics.FRAMES.labels(self._venue, "rejected").inc()
        metrics.REJECTED.labels(self._venue, error.reason).inc()
        log.warning("venue frame rejected", venue=self._venue, reason=error.reason,
                    detail=error.detail)
        if self._on_dead_letter is None:
            return
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        outcome = self._on_dead_letter(data, error.reason)
        if inspect.isawaitable(outcome):
            await outcome
