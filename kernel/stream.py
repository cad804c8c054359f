"""A stream processor: events from the log to a handler, offsets committed after it succeeds.

At-least-once by itself; effectively-once where the handler's writes are idempotent (Redis
values that never go back in time, upserts keyed by the event) — the same contract as the
projection runtime, for sinks that cannot share a transaction with the offsets. Offsets are
committed off the poll path (`commit_interval_ms`, see `kernel.runner`): a crash replays at
most about that window into the idempotent handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from kernel.dlq import dead_letter_topic
from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogRecord, TopicPartition
from kernel.projection import Applied
from kernel.runner import Emit, OwnsRunner, StageBase, StreamRunner
from kernel.settings import Settings
from schemas.codec import decode_event
from schemas.registry import TypeRegistry

Handler = Callable[[Sequence[Applied]], Awaitable[None]]

# Offsets of handled batches are committed in the background, at most this often (None: after
# every batch, on the poll path). Measured in bench/RESULTS.md ("ticks and ingest").
COMMIT_INTERVAL_MS: float | None = 100


class StreamProcessor(OwnsRunner, StageBase):
    """A consumer-group member on `kernel.runner.StreamRunner`, at-least-once: decodes each
    batch, dead-letters what does not decode, hands the good events to `handle`, then sends
    nothing of its own and commits."""

    def __init__(self, settings: Settings, *, name: str, topics: Sequence[str],
                 registry: TypeRegistry, handle: Handler | None = None,
                 max_batch: int = 2000, log: Log | None = None,
                 commit_interval_ms: float | None = COMMIT_INTERVAL_MS) -> None:
        self.settings = settings
        self.name = name
        self.topics = [settings.topic(t) for t in topics]
        self.registry = registry
        self.handle = handle
        self.max_batch = max_batch
        self.group_id = settings.topic(f"propstream.{name}")
        self._good: list[Applied] = []
        self.runner = StreamRunner(
            log if log is not None else KafkaLog(settings), self, name=name,
            group_id=self.group_id, topics=self.topics, mode="at-least-once",
            dead_letter_topic=lambda topic: dead_letter_topic(settings, topic),
            max_batch=max_batch, session_timeout_ms=settings.stream_session_timeout_ms,
            commit_interval_ms=commit_interval_ms)

    def step(self, record: LogRecord) -> Sequence[Emit]:
        env = decode_event(record.value or b"")
        self._good.append(Applied(env, self.registry.event_payload(env)))
        return ()

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        good, self._good = self._good, []
        if good and self.handle is not None:
            await self.handle(good)
