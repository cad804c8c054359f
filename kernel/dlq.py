"""Dead letters: a message that cannot be decoded or applied is parked with its error."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from kernel.kafka import make_consumer, make_producer, partitions_of
from kernel.log import OutRecord
from kernel.observability import DEAD_LETTERS, get_logger
from kernel.settings import Settings
from schemas.errors import DecodeError, PropstreamError
from schemas.topics import CATALOGUE
from schemas.topics import topic as catalogue_topic

log = get_logger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    origin_topic: str
    origin_partition: int
    origin_offset: int
    reason: str
    error: str
    consumer: str
    failed_at_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def reason_of(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, DecodeError) else type(exc).__name__


def dead_letter_topic(settings: Settings, physical_topic: str) -> str:
    """The physical dead-letter topic of a physical topic, from the catalogue."""
    logical = physical_topic
    if settings.namespace and physical_topic.startswith(settings.namespace + "."):
        logical = physical_topic[len(settings.namespace) + 1:]
    spec = catalogue_topic(logical)
    if spec.dead_letter is None:
        raise LookupError(f"topic {logical!r} has no dead-letter topic in the catalogue")
    return settings.topic(spec.dead_letter)


def dead_letter(msg: Any, exc: BaseException, *, consumer: str) -> OutRecord:
    """The dead letter of `msg` (a `LogRecord` or an aiokafka record): its key and value as
    they were, with the error and its origin in headers."""
    reason = reason_of(exc)
    headers = [
        ("x-error-reason", reason.encode()),
        ("x-error", str(exc)[:MAX_ERROR_CHARS].encode(errors="replace")),
        ("x-origin-topic", msg.topic.encode()),
        ("x-origin-partition", str(msg.partition).encode()),
        ("x-origin-offset", str(msg.offset).encode()),
        ("x-consumer", consumer.encode()),
        ("x-failed-at-ms", str(int(time.time() * 1000)).encode()),
    ]
    value = msg.value
    if value is not None and len(value) > 900 * 1024:
        value = value[: 900 * 1024]
        headers.append(("x-truncated", b"true"))
    return OutRecord(key=msg.key, value=value, headers=tuple(headers))


def counted(msg: Any, exc: BaseException, *, consumer: str) -> None:
    """Count and log a dead letter once it is on its way."""
    reason = reason_of(exc)
    DEAD_LETTERS.labels(consumer, msg.topic, reason).inc()
    log.warning("dead-lettered", topic=msg.topic, partition=msg.partition,
                offset=msg.offset, reason=reason, error=str(exc)[:300])


class DeadLetterSink:
    """Sends failed messages to their topic's dead-letter topic, from the catalogue."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, *, consumer: str) -> None:
        self.settings = settings
        self.producer = producer
        self.consumer = consumer

    def dlq_for(self, physical_topic: str) -> str:
        return dead_letter_topic(self.settings, physical_topic)

    async def send(self, msg: Any, exc: BaseException) -> None:
        """Park `msg` (an aiokafka ConsumerRecord) and wait until the broker has it."""
        letter = dead_letter(msg, exc, consumer=self.consumer)
        await self.producer.send_and_wait(self.dlq_for(msg.topic), value=letter.value,
                                          key=letter.key, headers=list(letter.headers))
        counted(msg, exc, consumer=self.consumer)


def _header(headers: Any, name: str) -> str:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return ""


async def read_dead_letters(settings: Settings, dlq_topic: str, *, limit: int = 100,
                            start: int = 0) -> list[DeadLetter]:
    """Read up to `limit` dead letters of a catalogue dead-letter topic from offset `start`."""
    consumer = make_consumer(settings, client_id="propstream-dlq-reader")
    await consumer.start()
    out: list[DeadLetter] = []
    try:
        parts = await partitions_of(consumer, settings.topic(dlq_topic))
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, start)
        remaining = {tp for tp in parts if ends[tp] > start}
        while remaining and len(out) < limit:
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit)
            if not batch:
                break
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(DeadLetter(
                        offset=m.offset,
                        origin_topic=_header(m.headers, "x-origin-topic"),
                        origin_partition=int(_header(m.headers, "x-origin-partition") or -1),
                        origin_offset=int(_header(m.headers, "x-origin-offset") or -1),
                        reason=_header(m.headers, "x-error-reason"),
                        error=_header(m.headers, "x-error"),
                        consumer=_header(m.headers, "x-consumer"),
                        failed_at_ms=int(_header(m.headers, "x-failed-at-ms") or 0),
                        key=m.key, value=m.value,
                        headers=tuple((k, bytes(v)) for k, v in m.headers or ()),
                    ))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out[:limit]


class NotRedrivable(PropstreamError):
    """Dead letters of this topic do not go back where they came from as they are."""


async def replay_dead_letters(settings: Settings, dlq_topic: str, *, offsets: set[int] | None,
                              limit: int = 1000) -> int:
    """Send dead letters back to the topic they came from; return how many were re-driven.

    Raise `NotRedrivable` for letters that name no origin topic (parked Stripe webhooks: raw
    Stripe JSON, re-driven by translating them again, `core.adapters.stripe_intake`)."""
    letters = await read_dead_letters(settings, dlq_topic, limit=limit)
    # A letter goes back only to a topic this dead-letter topic serves, in this namespace:
    # its headers are data, and must not steer a replay onto another family's commands.
    origins = {settings.topic(spec.name) for spec in CATALOGUE if spec.dead_letter == dlq_topic}
    strays = [letter for letter in letters if letter.origin_topic not in origins
              and (offsets is None or letter.offset in offsets)]
    if strays:
        named = ", ".join(f"{letter.offset} ({letter.origin_topic or 'no origin'})"
                          for letter in strays[:10])
        raise NotRedrivable(
            f"dead letter(s) of {dlq_topic} at offset(s) {named} name no topic it serves "
            f"({', '.join(sorted(origins)) or 'none'}); nothing was sent")
    producer = make_producer(settings, client_id="propstream-dlq-replay")
    await producer.start()
    sent = 0
    try:
        for letter in letters:
            if offsets is not None and letter.offset not in offsets:
                continue
            await producer.send_and_wait(
                letter.origin_topic, value=letter.value, key=letter.key,
                headers=[("x-replayed-from", f"{dlq_topic}@{letter.offset}".encode())],
            )
            sent += 1
    finally:
        await producer.stop()
    return sent
