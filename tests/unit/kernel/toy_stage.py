"""A toy stage for runner tests: echoes each input id to `out` on the input's partition,
once per id (the state — ids seen — is rebuilt from `out` on assignment, like a decider's)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from kernel.log import Log, LogRecord, Sent, TopicPartition
from kernel.runner import Emit, StageBase, StreamRunner
from schemas.errors import DecodeError

IN, OUT, DLQ = "in", "out", "in.dlq"


class Crash(BaseException):
    """The process dies here (not an error the runner handles)."""


class EchoStage(StageBase):
    def __init__(self, log: Log, *, dedupe: bool = True) -> None:
        self.log = log
        self.dedupe = dedupe
        self.seen: dict[int, set[bytes]] = {}
        self.loaded: list[list[int]] = []
        self.committed_batches: list[tuple[TopicPartition, int]] = []
        self.crash_in_flush = False

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        reader = self.log.consumer(client_id="loader")
        await reader.start()
        outs = [TopicPartition(OUT, tp.partition) for tp in partitions]
        reader.assign(outs)
        ends = await reader.end_offsets(outs)
        for tp in outs:
            self.seen[tp.partition] = set()
        while [tp for tp in outs if await reader.position(tp) < ends[tp]]:
            for tp, records in (await reader.poll(max_records=1000, timeout=0.1)).items():
                for r in records:
                    assert r.value is not None
                    self.seen[tp.partition].add(r.value)
        await reader.stop()
        self.loaded.append([tp.partition for tp in partitions])
        return {}

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.seen.pop(tp.partition, None)

    def step(self, record: LogRecord) -> Sequence[Emit]:
        if record.value is None or not record.value.startswith(b"id:"):
            raise DecodeError("not-an-id", f"{record.value!r} is not an id")
        seen = self.seen[record.partition]
        if self.dedupe and record.value in seen:
            return []
        seen.add(record.value)
        return [Emit(OUT, record.key, record.value, partition=record.partition)]

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.crash_in_flush:
            raise Crash

    async def committed(self, tp: TopicPartition, sent: Mapping[str, list[Sent]]) -> None:
        self.committed_batches.append((tp, len(sent.get(OUT, []))))


def runner(log: Log, stage: EchoStage, *, mode: str = "transactional",
           max_batch: int = 500, name: str = "echo",
           commit_interval_ms: float | None = None, assign_all: bool = False,
           only: Collection[TopicPartition] | None = None) -> StreamRunner:
    return StreamRunner(log, stage, name=name, group_id="g", topics=[IN],
                        mode=mode,  # type: ignore[arg-type]
                        dead_letter_topic=lambda topic: topic + ".dlq", max_batch=max_batch,
                        commit_interval_ms=commit_interval_ms, assign_all=assign_all,
                        only=only)
