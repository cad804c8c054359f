"""Decider snapshots on a compacted topic: chunks first, then a manifest that commits them.

Keys are `<partition>:manifest` and `<partition>:<chunk>`; a manifest names the snapshot id
its chunks carry, so chunks left over from an older, larger snapshot are never mixed in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogProducer, OutRecord
from kernel.observability import get_logger
from kernel.settings import Settings

log = get_logger(__name__)

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class StoredSnapshot:
    events_offset: int
    items: list[list[Any]]
    taken_at: str


def chunk(items: list[list[Any]], limit: int = CHUNK_BYTES) -> list[list[bytes]]:
    """Split encoded items into groups of at most ~`limit` bytes (one item may exceed it)."""
    groups: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        data = orjson.dumps(item)
        if groups[-1] and size + len(data) > limit:
            groups.append([])
            size = 0
        groups[-1].append(data)
        size += len(data)
    return groups if groups[0] else []


class SnapshotStore:
    def __init__(self, settings: Settings, family: str, log_: Log | None = None) -> None:
        self.settings = settings
        self.topic = settings.topic(f"{family}.snapshots")
        self.log: Log = log_ if log_ is not None else KafkaLog(settings)

    async def save(self, producer: LogProducer, partition: int, items: list[list[Any]],
                   *, events_offset: int) -> int:
        """Write one partition's snapshot (chunks, then the manifest); return its bytes."""
        snapshot_id = str(uuid.uuid4())
        groups = chunk(items)
        records = []
        for index, group in enumerate(groups):
            value = (b'{"snapshot_id":"' + snapshot_id.encode() + b'","index":'
                     + str(index).encode() + b',"items":[' + b",".join(group) + b"]}")
            records.append(OutRecord(f"{partition}:{index}".encode(), value))
        if records:
            await producer.send_many(self.topic, records)
        manifest = orjson.dumps({
            "snapshot_id": snapshot_id, "partition": partition, "events_offset": events_offset,
            "chunks": len(groups), "taken_at": datetime.now(UTC).isoformat(),
        })
        # After the chunks are acknowledged: a manifest never names chunks not yet written.
        await producer.send_many(self.topic, [OutRecord(f"{partition}:manifest".encode(),
                                                        manifest)])
        return sum(len(r.value or b"") for r in records) + len(manifest)

    async def load(self, partitions: list[int]) -> dict[int, StoredSnapshot | None]:
        """The newest complete snapshot of each partition (None where there is none)."""
        consumer = self.log.consumer(client_id="snapshot-loader")
        await consumer.start()
        latest: dict[bytes, bytes] = {}
        try:
            parts = await consumer.partitions_for(self.topic)
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            for tp in parts:
                consumer.seek(tp, 0)  # compacted: an offset before the first is reset to it
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.poll(max_records=1000, timeout=1.0)
                for messages in batch.values():
                    for msg in messages:
                        if msg.key is not None and msg.value is not None:
                            latest[msg.key] = msg.value
        finally:
            await consumer.stop()
        return {p: _assemble(latest, p) for p in partitions}


def _assemble(latest: dict[bytes, bytes], partition: int) -> StoredSnapshot | None:
    raw = latest.get(f"{partition}:manifest".encode())
    if raw is None:
        return None
    manifest = orjson.loads(raw)
    items: list[list[Any]] = []
    for index in range(manifest["chunks"]):
        value = latest.get(f"{partition}:{index}".encode())
        body = orjson.loads(value) if value is not None else None
        if body is None or body["snapshot_id"] != manifest["snapshot_id"]:
            log.warning("snapshot incomplete, replaying the whole log", partition=partition)
            return None
        items.extend(body["items"])
    return StoredSnapshot(manifest["events_offset"], items, manifest["taken_at"])
