"""The hub: which client listens to which channel, and delivery with backpressure.

One event loop owns it. A round of log records is sent while it is written to the
channels' histories (a subscriber waits for that write, `settled`, before it reads them,
so a client resuming later finds everything it could have been sent):
a frame is built once per (subscription set, format) and written to every client of that
set whose socket buffer is below `ws_write_high_bytes`. A client above it is slow: its
ticks are conflated to the latest per instrument and its other messages queue up to
`ws_queue_messages`; a flush loop retries it every `ws_flush_ms`, and closes it 4408 when
it stayed slow for `ws_slow_close_s` or its queue overflowed. Nothing here awaits a client,
so one that never reads cannot hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ws_gateway import metrics
from ws_gateway.adapters.redis_store import GatewayStore
from ws_gateway.domain.conflation import Pending
from ws_gateway.domain.frames import TickEntry, encode_frames
from ws_gateway.domain.messages import tick_message, ticks_bundle, with_epoch
from ws_gateway.domain.protocol import CLOSE_TOO_SLOW
from ws_gateway.domain.records import ChannelEvent, RawTicks, decode_event, decode_ticks
from ws_gateway.domain.wire import server_frame


class Socket(Protocol):
    """What the hub needs of a connection (websockets' ServerConnection has it)."""

    def write(self, frames: Sequence[bytes]) -> None:
        """Write whole WebSocket frames (`domain.wire.server_frame`), never waiting."""

    def buffered(self) -> int: ...

    def close_soon(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class Client:
    """One connection's state in the hub."""

    socket: Socket
    binary: bool
    pending: Pending
    channels: set[str] = field(default_factory=set)
    # channel -> live items that arrived while the channel was being resumed
    replaying: dict[str, list[TickEntry | tuple[int, bytes]]] = field(default_factory=dict)
    slow_since: float | None = None
    closed: bool = False
    _key: frozenset[str] | None = None

    @property
    def key(self) -> frozenset[str]:
        if self._key is None:
            self._key = frozenset(self.channels)
        return self._key

    def changed(self) -> None:
        self._key = None


@dataclass(frozen=True, slots=True)
class Source:
    """A topic the hub reads: its channel family and whether it carries tick batches."""

    family: str
    public: bool
    ticks: bool


class Hub:
    def __init__(self, store: GatewayStore, *, write_high: int, slow_close_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.write_high = write_high
        self.slow_close_s = slow_close_s
        self.clock = clock
        self.subscribers: dict[str, set[Client]] = defaultdict(set)
        self.epochs: dict[str, int] = {}
        self.instrument_ids: dict[str, int] = {}
        self.slow: set[Client] = set()
        self.clients: set[Client] = set()
        self._keys: dict[frozenset[str], frozenset[str]] = {}
        self._writing: asyncio.Future[dict[str, int]] | None = None

    # -- clients --------------------------------------------------------------------------

    def add(self, client: Client) -> None:
        self.clients.add(client)
        metrics.CONNECTIONS.set(len(self.clients))

    def remove(self, client: Client) -> None:
        client.closed = True
        for channel in client.channels:
            subs = self.subscribers.get(channel)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.subscribers[channel]
        client.channels.clear()
        self.slow.discard(client)
        self.clients.discard(client)
        metrics.CONNECTIONS.set(len(self.clients))

    def join(self, client: Client, channel: str) -> None:
        """Subscribe `client`; live messages are buffered until `resumed` is called. Read
        the channel's history only after `settled`."""
        client.channels.add(channel)
        client.changed()
        client.replaying[channel] = []
        self.subscribers[channel].add(client)

    def leave(self, client: Client, channel: str) -> None:
        client.channels.discard(channel)
        client.replaying.pop(channel, None)
        client.changed()
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self.subscribers[channel]

    def resumed(self, client: Client, channel: str, *, after: int) -> None:
        """The channel's replay is sent up to `after`: send what arrived meanwhile, beyond
        it, and deliver live from now on."""
        buffered = client.replaying.pop(channel, None)
        if not buffered or client.closed:
            return
        ticks = [t for t in buffered if isinstance(t, TickEntry) and t.seq > after]
        events = [m for s, m in (b for b in buffered if isinstance(b, tuple)) if s > after]
        self._send(client, ticks, events)

    def _interned(self, client: Client) -> frozenset[str]:
        """The client's subscription set as one shared object per distinct set: grouping
        compares keys by identity first, and 1,000 equal sets of 50 channels compared
        element by element cost milliseconds a round."""
        key = client.key
        shared = self._keys.get(key)
        if shared is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            shared = self._keys[key] = key
        client._key = shared
        return shared

    async def instrument_id(self, symbol: str) -> int:
        ident = self.instrument_ids.get(symbol)
        if ident is None:
            ident = self.instrument_ids[symbol] = await self.store.instrument_id(symbol)
        return ident

    # -- a round of log records ------------------------------------------------------------

    async def on_records(self, records: Sequence[tuple[Source, int, bytes]]) -> int:
        """History first, then delivery; returns the number of channel messages."""
        raw_ticks: list[RawTicks] = []
        events: list[ChannelEvent] = []
        for source, offset, value in records:
            if source.ticks:
                batch = decode_ticks(value, offset)
                if batch is not None:
                    raw_ticks.append(batch)
            else:
                event = decode_event(value, offset, family=source.family, public=source.public)
                if event is not None:
                    events.append(event)
        if not raw_ticks and not events:
            return 0
        ticks: dict[str, list[TickEntry]] = defaultdict(list)
        for batch in raw_ticks:
            ident = await self.instrument_id(batch.symbol)
            ticks[batch.channel].extend(batch.entries(instrument_id=ident, epoch=0))
        history: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for channel, entries in ticks.items():
            history[channel].extend((e.seq, tick_message(e)) for e in entries)
        for event in events:
            history[event.channel].append((event.seq, event.message))
        known = self.epochs
        if all(channel in known for channel in history):
            # Send first, with the epochs already known, while the history write is in
            # flight (one Redis round trip less before the sockets); a subscribe that comes
            # meanwhile waits for the write (`settled`) before it reads the history.
            self._deliver(*self._live(ticks, events, known))
            self._writing = asyncio.ensure_future(self.store.append(history.items()))
            try:
                # An epoch that moved (the history expired, so Redis began a new one) is
                # used from the next round; a client resuming from the old one gets a
                # snapshot, as after any epoch change.
                self.epochs.update(await self._writing)
            finally:
                self._writing = None
        else:  # a channel's first message: its epoch is made with its history
            self.epochs.update(await self.store.append(history.items()))
            self._deliver(*self._live(ticks, events, self.epochs))
        return sum(len(v) for v in history.values())

    @staticmethod
    def _live(ticks: dict[str, list[TickEntry]], events: list[ChannelEvent],
              epochs: dict[str, int]
              ) -> tuple[dict[str, list[TickEntry]], dict[str, list[tuple[int, bytes]]]]:
        live_ticks = {ch: [_with_epoch(e, epochs[ch]) for e in entries]
                      for ch, entries in ticks.items()}
        live_events: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for event in events:
            live_events[event.channel].append(
                (event.seq, with_epoch(event.message, epochs[event.channel])))
        return live_ticks, live_events

    async def settled(self) -> None:
        """Wait until the round sent last is in the histories (a subscriber reads them
        next, and must find every message sent before it joined)."""
        writing = self._writing
        if writing is not None:
            with contextlib.suppress(Exception):  # the round's own await reports it
                await asyncio.shield(writing)

    def _deliver(self, ticks: dict[str, list[TickEntry]],
                 events: dict[str, list[tuple[int, bytes]]]) -> None:
        touched: set[Client] = set()
        for channel in (*ticks, *events):
            subs = self.subscribers.get(channel)
            if subs:
                touched.update(subs)
        groups: dict[tuple[frozenset[str], bool], list[Client]] = defaultdict(list)
        for client in touched:
            if client.replaying:
                for channel, buffer in client.replaying.items():
                    buffer.extend(ticks.get(channel, ()))
                    buffer.extend(events.get(channel, ()))
                rest = client.channels - client.replaying.keys()
                self._send(client, [t for ch in rest for t in ticks.get(ch, ())],
                           [m for ch in rest for _, m in events.get(ch, ())])
            else:
                groups[(self._interned(client), client.binary)].append(client)
        for (key, binary), clients in groups.items():
            entries = [t for ch in key for t in ticks.get(ch, ())]
            messages = [m for ch in key for _, m in events.get(ch, ())]
            # A client not marked slow is written to; the write marks it slow if its buffer
            # went over the mark (one buffer look per client and round).
            ready: list[Client] = []
            for client in clients:
                if client.slow_since is None:
                    ready.append(client)
                else:
                    self._hold(client, entries, messages)
            if ready:
                self._write(ready, entries, messages, binary=binary)

    def _send(self, client: Client, entries: list[TickEntry], messages: list[bytes]) -> None:
        if not entries and not messages:
            return
        if client.slow_since is None and client.socket.buffered() <= self.write_high:
            self._write([client], entries, messages, binary=client.binary)
        else:
            self._hold(client, entries, messages)

    def _write(self, clients: list[Client], entries: list[TickEntry], messages: list[bytes], *,
               binary: bool) -> None:
        if entries:
            payloads = (encode_frames(entries) if binary
                        else [ticks_bundle(entries, self.epochs)])
            frames = [server_frame(p, text=not binary) for p in payloads]
            for client in clients:
                client.socket.write(frames)
            metrics.FRAMES.inc(len(frames) * len(clients))
            metrics.DELIVERIES.labels("tick").inc(len(entries) * len(clients))
            newest = max(e.received_ns for e in entries)
            if newest:
                metrics.TICK_TO_SEND.observe(max(0.0, time.time() - newest / 1e9))
        if messages:
            texts = [server_frame(m, text=True) for m in messages]
            for client in clients:
                client.socket.write(texts)
            metrics.FRAMES.inc(len(messages) * len(clients))
            metrics.DELIVERIES.labels("event").inc(len(messages) * len(clients))
        for client in clients:
            if client.socket.buffered() > self.write_high:
                self._mark_slow(client)

    def _mark_slow(self, client: Client) -> None:
        if client.slow_since is None:
            client.slow_since = self.clock()
            self.slow.add(client)

    def _hold(self, client: Client, entries: list[TickEntry], messages: list[bytes]) -> None:
        self._mark_slow(client)
        metrics.DROPS.inc(client.pending.add_ticks(entries))
        for message in messages:
            if not client.pending.offer(message):
                self.close(client, CLOSE_TOO_SLOW, "too slow: queue overflow")
                return

    def close(self, client: Client, code: int, reason: str) -> None:
        if client.closed:
            return
        metrics.CLOSES.labels(str(code)).inc()
        self.remove(client)
        client.socket.close_soon(code, reason)

    def flush(self) -> None:
        """Retry slow clients: send what they are owed once their buffer drained to half,
        close those slow for too long."""
        now = self.clock()
        queued = 0
        for client in list(self.slow):
            if client.closed:
                self.slow.discard(client)
                continue
            if client.socket.buffered() <= self.write_high // 2:
                client.slow_since = None
                self.slow.discard(client)
                entries, messages = client.pending.take()
                if entries or messages:
                    self._write([client], entries, messages, binary=client.binary)
            elif client.slow_since is not None and now - client.slow_since > self.slow_close_s:
                self.close(client, CLOSE_TOO_SLOW, "too slow")
            else:
                queued += len(client.pending)
        metrics.QUEUED.set(queued)
        metrics.SLOW_CLIENTS.set(len(self.slow))

    async def run_flusher(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.flush()


def _with_epoch(entry: TickEntry, epoch: int) -> TickEntry:
    return TickEntry(entry.channel, entry.instrument_id, epoch, entry.seq, entry.ts_ns,
                     entry.price, entry.volume, entry.bid, entry.ask, entry.received_ns)


async def run_all(*tasks: Awaitable[Any]) -> None:
    """Run until the first task ends (a crash re-raised), cancelling the others."""
    futures = [asyncio.ensure_future(t) for t in tasks]
    try:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for f in done:
            f.result()
    finally:
        for f in futures:
            f.cancel()
        for f in futures:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await f
