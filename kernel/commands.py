"""The API side of commands: publish keyed by aggregate id, wait a bounded time for the reply."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from kernel.kafka import make_consumer, make_producer, partitions_of
from kernel.observability import COMMAND_SECONDS, get_logger
from kernel.settings import Settings
from schemas.codec import decode_model, encode
from schemas.envelope import CommandEnvelope
from schemas.errors import DecodeError
from schemas.replies import CommandReply
from schemas.topics import REPLIES

log = get_logger(__name__)

# UUIDv5 namespace turning a client's Idempotency-Key into a command id.
IDEMPOTENCY_NAMESPACE = uuid.UUID("0b6f8c1a-3d2e-4c5b-8a9f-7e6d5c4b3a21")


def body_digest(body: BaseModel | Mapping[str, Any] | None) -> str:
    """SHA-256 of a request body as decoded (key order, whitespace and spelling of the same
    values do not count); "" for a route without a body."""
    if body is None:
        return ""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else dict(body)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def command_id_for(idempotency_key: str | None, *, caller: str, scope: str,
                   body: BaseModel | Mapping[str, Any] | None) -> uuid.UUID:
    """A client key maps to one command id per caller, scope (route, target) and body; none
    gets a fresh id. The same key from two callers, or with two bodies, is two commands: a
    key is only ever a retry of the same request by the same caller (the Redis record of
    kernel.idempotency says so for a day; the command id says so for as long as the decider
    remembers it)."""
    if idempotency_key is None:
        return uuid.uuid4()
    # A JSON array: no part can spill into the next, whatever characters it holds.
    parts = orjson.dumps([caller, scope, idempotency_key, body_digest(body)]).decode()
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, parts)


class CommandBus:
    """Sends commands and collects every decided reply from the replies topic.

    Replies are remembered for polling, newest last, within `remember` entries and
    `Settings.command_reply_cache_bytes` bytes (their size on the wire): a flood of large
    replies evicts the oldest, never grows the process.
    """

    def __init__(self, settings: Settings, *, client_id: str = "propstream-api",
                 remember: int = 100_000) -> None:
        self.settings = settings
        self.client_id = client_id
        self.remember = remember
        self.remember_bytes = settings.command_reply_cache_bytes
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._waiting: dict[uuid.UUID, asyncio.Future[CommandReply]] = {}
        self._recent: OrderedDict[uuid.UUID, tuple[CommandReply, int]] = OrderedDict()
        self._recent_bytes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.producer = make_producer(self.settings, client_id=self.client_id, linger_ms=0)
        await self.producer.start()
        self.consumer = make_consumer(self.settings, client_id=f"{self.client_id}-replies")
        await self.consumer.start()
        parts = await partitions_of(self.consumer, self.settings.topic(REPLIES.name))
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the positions now, so no reply sent after start is missed
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._collect(), name="command-replies")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    def recent(self, command_id: uuid.UUID) -> CommandReply | None:
        known = self._recent.get(command_id)
        return None if known is None else known[0]

    @property
    def remembered_bytes(self) -> int:
        return self._recent_bytes

    async def send(self, topic: str, command: CommandEnvelope, *,
                   wait_ms: int | None = None) -> CommandReply | None:
        """Publish `command`; return its reply, or None when none came within the wait."""
        assert self.producer is not None
        known = self.recent(command.command_id)
        if known is not None:
            return known
        wait = (wait_ms if wait_ms is not None else self.settings.command_timeout_ms) / 1000
        future = self._waiting.get(command.command_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[command.command_id] = future
        started = time.perf_counter()
        await self.producer.send_and_wait(self.settings.topic(topic), value=encode(command),
                                          key=command.aggregate_id.encode())
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), timeout=wait)
        except TimeoutError:
            return None  # the reply, when it comes, is still remembered for polling
        finally:
            self._waiting.pop(command.command_id, None)
        COMMAND_SECONDS.labels(command.type).observe(time.perf_counter() - started)
        return reply

    async def _collect(self) -> None:
        assert self.consumer is not None
        while True:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=1000)
            for messages in batch.values():
                for msg in messages:
                    try:
                        reply = decode_model(msg.value, CommandReply)
                    except DecodeError as exc:
                        log.warning("unreadable reply", offset=msg.offset, error=str(exc))
                        continue
                    self.remember_reply(reply, size=len(msg.value))
                    future = self._waiting.pop(reply.command_id, None)
                    if future is not None and not future.done():
                        future.set_result(reply)

    def remember_reply(self, reply: CommandReply, *, size: int) -> None:
        """Keep `reply` (`size` bytes on the wire) for polling, evicting the oldest."""
        previous = self._recent.get(reply.command_id)
        if previous is not None:
            if not previous[0].duplicate:
                return  # keep the first decision; a duplicate reply carries the same outcome
            self._recent_bytes -= previous[1]
        self._recent[reply.command_id] = (reply, size)
        self._recent.move_to_end(reply.command_id)
        self._recent_bytes += size
        while self._recent and (len(self._recent) > self.remember
                                or self._recent_bytes > self.remember_bytes):
            _, (_, evicted) = self._recent.popitem(last=False)
            self._recent_bytes -= evicted
