"""Reads one account's events back from its partition of `account.events`, for time travel.

A few long-lived readers (plain assigned consumers, no group) are shared by the API's
requests, one request per reader at a time: starting a Kafka consumer per request would cost
a metadata round trip each, and the pool bounds how many tails are read at once. Every read
is capped in records (`max_records`); past it the read stops with `TailTooLong`, so one
request can never hold a reader or the event loop for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from core.domain.trading.history import Rewind
from core.exceptions import CoreError
from kernel.kafka import make_consumer
from kernel.kafkalog import KafkaConsumer
from kernel.log import LogConsumer, TopicPartition
from kernel.observability import get_logger
from kernel.settings import Settings
from schemas.codec import decode_event
from schemas.errors import DecodeError
from schemas.registry import TypeRegistry

log = get_logger(__name__)

POLL_RECORDS = 5_000
IDLE_POLL_S = 0.05


class TailTooLong(CoreError):
    """The tail to read is longer than a request may read."""

    def __init__(self, records: int) -> None:
        super().__init__(f"more than {records} records to read")
        self.records = records


class ReadersBusy(CoreError):
    """Every reader stayed busy for the whole wait."""


class AccountLogReader:
    """Folds an account's events from given ranges of its partition into a `Rewind`."""

    def __init__(self, consumer: Callable[[str], LogConsumer], *, topic: str,
                 registry: TypeRegistry, readers: int = 2, max_records: int = 100_000,
                 wait_s: float = 2.0, deadline_s: float = 5.0) -> None:
        self.consumer = consumer
        self.topic = topic
        self.registry = registry
        self.readers = readers
        self.max_records = max_records
        self.wait_s = wait_s
        self.deadline_s = deadline_s
        self._idle: asyncio.Queue[LogConsumer] = asyncio.Queue()
        self._all: list[LogConsumer] = []
        self._made = 0

    async def stop(self) -> None:
        for consumer in self._all:
            await consumer.stop()
        self._all.clear()

    async def _take(self) -> LogConsumer:
        if self._idle.empty() and self._made < self.readers:
            self._made += 1
            consumer = self.consumer(f"time-travel-{self._made}")
            try:
                await consumer.start()
            except BaseException:
                self._made -= 1
                raise
            self._all.append(consumer)
            return consumer
        try:
            return await asyncio.wait_for(self._idle.get(), self.wait_s)
        except TimeoutError:
            raise ReadersBusy(f"all {self.readers} time-travel readers busy") from None

    async def fold(self, rewind: Rewind, *, account_id: str, partition: int,
                   ranges: Sequence[tuple[int, int | None]]) -> int:
        """Feed the account's events found in `ranges` (from, to: offsets; to None: the end
        of the partition now) to `rewind`, in order, until it stops; return the records read.
        """
        if all(hi is not None and lo >= hi for lo, hi in ranges):
            return 0
        consumer = await self._take()
        try:
            read = await self._fold(consumer, rewind, account_id.encode(),
                                    TopicPartition(self.topic, partition), ranges)
        except BaseException:
            # A read cut short leaves the reader mid-fetch: start afresh next time.
            self._all.remove(consumer)
            self._made -= 1
            await consumer.stop()
            raise
        self._idle.put_nowait(consumer)
        return read

    async def _fold(self, consumer: LogConsumer, rewind: Rewind, key: bytes,
                    tp: TopicPartition, ranges: Sequence[tuple[int, int | None]]) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        read = 0
        if consumer.assignment() != {tp}:
            consumer.assign([tp])
        decode, payload_of, cap = decode_event, self.registry.event_payload, self.max_records
        for lo, hi in ranges:
            if hi is None:
                hi = (await consumer.end_offsets([tp]))[tp]
            if lo >= hi:
                continue
            consumer.seek(tp, lo)
            at = lo
            while True:
                if loop.time() > deadline:
                    raise TailTooLong(read)
                # No more than the range holds: every record taken is built and parsed.
                batch = await consumer.poll(max_records=max(1, min(POLL_RECORDS, hi - at)),
                                            timeout=IDLE_POLL_S)
                for record in batch.get(tp, ()):
                    at = record.offset + 1
                    if record.offset >= hi:
                        break
                    read += 1
                    if read > cap:
                        raise TailTooLong(cap)
                    if record.key != key:
                        continue
                    try:
                        env = decode(record.value or b"")
                        payload = payload_of(env)
                    except DecodeError as exc:  # as the decider: an unreadable event is skipped
                        log.warning("unreadable account event skipped", offset=record.offset,
                                    partition=tp.partition, error=str(exc))
                        continue
                    if not rewind.feed(env, payload):
                        return read
                if await consumer.position(tp) >= hi:
                    break
                await asyncio.sleep(0)  # a long tail shares the loop with other requests
        return read


def kafka_readers(settings: Settings) -> Callable[[str], LogConsumer]:
    """Plain Kafka readers for `AccountLogReader`. A reader left at the end of a partition
    has a fetch parked on the broker for `fetch_max_wait_ms` (500 ms by default), and the
    next request's seek waits for it: 0.5 s added to one read in five (bench.time_travel).
    So they wait 5 ms at most."""
    return lambda client_id: KafkaConsumer(make_consumer(
        settings, client_id=client_id, fetch_max_wait_ms=5), None)
