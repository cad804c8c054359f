"""Kafka adapters: the idempotent producer, the topic catalogue applier, small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.new_partitions import NewPartitions
from aiokafka.partitioner import murmur2

from kernel.exceptions import InfraError, TopicChangeRefused
from kernel.log import Sent
from kernel.settings import Settings
from schemas.topics import TopicSpec

Header = tuple[str, bytes]


def make_producer(settings: Settings, *, client_id: str, linger_ms: int = 2) -> AIOKafkaProducer:
    """An idempotent producer: acks=all, retries without duplicates, batches of up to 1 MiB."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1024 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=30000,
    )


def make_consumer(settings: Settings, *, client_id: str, group_id: str | None = None,
                  **kwargs: object) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **kwargs,
    )


Record = tuple[bytes | None, bytes]


async def send_batch_closed(producer: AIOKafkaProducer, batch: Any, topic: str,
                       partition: int) -> asyncio.Future[Any]:
    """Hand a finished batch to the producer, closed: aiokafka lets an open batch linger
    `linger_ms` for records that will never come (2 ms of every send_many's latency, and a
    second batch for the same partition waits for the first to drain; bench/RESULTS.md,
    issue 10 second pass)."""
    batch.close()
    future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return future


async def send_many(producer: AIOKafkaProducer, topic: str, records: Sequence[Record], *,
                    partition: int | None = None) -> list[Sent]:
    """Send records as whole batches per partition and wait until the broker has them all.

    Each keyed record goes to the partition `send()` would choose (murmur2 of the key, the
    Java client's partitioner); order is kept within a partition. Return where each record
    landed, in input order. Per-record `send()` spends ~8x the CPU in aiokafka's Python
    (bench/RESULTS.md), which is what keeps one process under 50k records/s.
    """
    if not records:
        return []
    if partition is None:
        count = len(await producer.partitions_for(topic))
        cache: dict[bytes, int] = {}
        targets = []
        for key, _ in records:
            if key is None:
                raise ValueError("send_many needs a key for every record, or a partition")
            p = cache.get(key)
            if p is None:
                p = cache[key] = (murmur2(key) & 0x7FFFFFFF) % count
            targets.append(p)
    else:
        targets = [partition] * len(records)
    by_partition: dict[int, list[int]] = {}
    for index, p in enumerate(targets):
        by_partition.setdefault(p, []).append(index)
    pending: list[tuple[int, list[int], asyncio.Future[Any]]] = []
    for p, indexes in by_partition.items():
        batch = producer.create_batch()
        members: list[int] = []
        for index in indexes:
            key, value = records[index]
            if batch.append(key=key, value=value, timestamp=None) is None:
                pending.append((p, members, await send_batch_closed(producer, batch, topic, p)))
                batch, members = producer.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
            members.append(index)
        if members:
            pending.append((p, members, await send_batch_closed(producer, batch, topic, p)))
    placed: list[Sent | None] = [None] * len(records)
    results = await asyncio.gather(*(future for _, _, future in pending))
    for (p, members, _), meta in zip(pending, results, strict=True):
        for i, index in enumerate(members):
            placed[index] = Sent(p, meta.offset + i)
    return [s for s in placed if s is not None]


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str


TOPIC_ALREADY_EXISTS = 36
VISIBLE_WITHIN_S = 30.0


async def apply_topics(settings: Settings, specs: Iterable[TopicSpec]) -> list[TopicChange]:
    """Create missing topics, raise partition counts where that is safe, align configs; never
    delete anything. Raise `TopicChangeRefused`, before changing anything at all, when the
    catalogue asks for more partitions of a topic whose keys must stay where they are
    (`TopicSpec.may_grow`).

    Return only once every wanted topic is in the broker's metadata with all its partitions
    led, so a producer or consumer started next finds them. A broker answers metadata from a
    cache that trails the controller: a topic created a moment ago may be missing from a
    listing (CI saw a 4.6 s wait in a producer, and a second apply "create" a topic that
    existed). A create that meets such a topic is not reported as created; the pass is done
    again on a fresh view once the topic shows."""
    wanted = {settings.topic(s.name): s for s in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                client_id="propstream-topics")
    await admin.start()
    changes: list[TopicChange] = []
    try:
        for _ in range(3):
            raced = await _apply_pass(admin, wanted, settings.kafka_replication_factor,
                                       changes)
            if not raced:
                break
            await _wait_visible(admin, {name: 1 for name in raced})
        else:
            raise InfraError(f"topics {sorted(raced)} exist on the controller but the "
                             "broker's metadata keeps saying they do not; check the broker")
        await _wait_visible(admin, {name: spec.partitions for name, spec in wanted.items()})
    finally:
        await admin.close()
    return changes


async def _apply_pass(admin: AIOKafkaAdminClient, wanted: dict[str, TopicSpec],
                      replication: int, changes: list[TopicChange]) -> set[str]:
    """One pass of `apply_topics` on the broker's current view; append what it changed and
    return the topics a create found already there (the view was stale: do the pass again)."""
    existing = set(await admin.list_topics())
    present = [name for name in wanted if name in existing]
    described = await admin.describe_topics(present) if present else []
    _refuse_unsafe_growth(described, wanted)
    missing = [
        NewTopic(name, spec.partitions, replication,
                 topic_configs=spec.config())
        for name, spec in wanted.items() if name not in existing
    ]
    if missing:
        raced = _created_or_raced(await admin.create_topics(missing))
        changes += [TopicChange(t.name, f"created ({t.num_partitions} partitions)")
                    for t in missing if t.name not in raced]
        if raced:
            return raced
    if not present:
        return set()
    grow: dict[str, NewPartitions] = {}
    for item in described:
        have = len(item["partitions"])
        spec = wanted[item["topic"]]
        if have < spec.partitions:
            grow[item["topic"]] = NewPartitions(total_count=spec.partitions)
            changes.append(TopicChange(item["topic"], f"partitions {have} -> {spec.partitions}"))
        elif have > spec.partitions:
            changes.append(TopicChange(
                item["topic"], f"has {have} partitions, catalogue says "
                f"{spec.partitions}: Kafka cannot shrink a topic, left as is"))
    if grow:
        await admin.create_partitions(grow)
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
    current = await admin.describe_configs(resources)
    to_alter = []
    for response in current:
        for name, _code, _msg, entries in _resources(response):
            have_cfg = {e[0]: e[1] for e in entries}
            want_cfg = wanted[name].config()
            if any(have_cfg.get(k) != v for k, v in want_cfg.items()):
                to_alter.append(ConfigResource(ConfigResourceType.TOPIC, name,
                                               configs=want_cfg))
                changes.append(TopicChange(name, "config updated"))
    if to_alter:
        await admin.alter_configs(to_alter)
    return set()


def _created_or_raced(response: Any) -> set[str]:
    """The topics a CreateTopics response says already existed; raise on any other error
    (aiokafka hands the per-topic error codes back instead of raising)."""
    raced: set[str] = set()
    failed: list[str] = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code == TOPIC_ALREADY_EXISTS:
            raced.add(name)
        elif code:
            failed.append(f"{name}: error {code}" + (f" ({message})" if message else ""))
    if failed:
        raise InfraError("the broker refused to create topics: " + "; ".join(failed))
    return raced


async def _wait_visible(admin: AIOKafkaAdminClient, partitions: dict[str, int]) -> None:
    """Wait until the broker's metadata lists each topic with at least its partition count,
    every partition with a leader; raise `InfraError` naming the laggards after
    `VISIBLE_WITHIN_S`."""
    deadline = asyncio.get_running_loop().time() + VISIBLE_WITHIN_S
    delay = 0.02
    while True:
        lagging = []
        for item in await admin.describe_topics(list(partitions)):
            parts = item["partitions"]
            if (item["error_code"] or len(parts) < partitions[item["topic"]]
                    or any(p["leader"] < 0 for p in parts)):
                lagging.append(item["topic"])
        if not lagging:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise InfraError(f"topics {sorted(lagging)} are not in the broker's metadata with "
                             f"all partitions led after {VISIBLE_WITHIN_S:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def _refuse_unsafe_growth(described: Iterable[dict[str, Any]],
                          wanted: dict[str, TopicSpec]) -> None:
    unsafe = [(item["topic"], len(item["partitions"]), wanted[item["topic"]].partitions)
              for item in described
              if len(item["partitions"]) < wanted[item["topic"]].partitions
              and not wanted[item["topic"]].may_grow]
    if not unsafe:
        return
    listed = "; ".join(f"{name} has {have}, the catalogue says {want}"
                       for name, have, want in unsafe)
    raise TopicChangeRefused(
        f"refusing to add partitions to keyed topics ({listed}): adding partitions moves "
        "keys to other partitions, so a decider would decide an aggregate without its history "
        "(commands/events pairs) and consumers would fold a key out of order (streams, "
        "snapshots). Nothing was changed. Either keep the count in schemas/topics.py as it "
        "is on the broker, or migrate: create the family under new topic names (or a new "
        "PROPSTREAM_NAMESPACE) with the new count, copy its events there in order with the "
        "deciders stopped, then switch the deciders and projections to it (docs/operations.md)")


async def delete_namespace_topics(settings: Settings, *,
                                  namespaces: Sequence[str] | None = None) -> int:
    """Delete every topic of the settings' namespace, or of each of `namespaces` (test and
    benchmark data), with one admin client and one listing; refuse to run without a
    namespace, so the platform's own topics can never be hit. Return how many."""
    names = [settings.namespace] if namespaces is None else list(namespaces)
    if not names or not all(names):
        raise ValueError("refusing to delete topics outside a namespace")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                client_id="propstream-cleanup")
    await admin.start()
    try:
        prefixes = tuple(f"{name}." for name in names)
        mine = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        for start in range(0, len(mine), 500):  # one request per 500 topics
            await admin.delete_topics(mine[start:start + 500])
        return len(mine)
    finally:
        await admin.close()


def _resources(response: object) -> list[tuple[str, int, str, list[tuple[str, str]]]]:
    out = []
    for res in response.resources:  # type: ignore[attr-defined]
        error_code, _msg, _rtype, name, entries = res[0], res[1], res[2], res[3], res[4]
        out.append((name, error_code, _msg, [(e[0], e[1]) for e in entries]))
    return out


async def partitions_of(consumer: AIOKafkaConsumer, topic: str,
                        *, timeout: float = 20.0) -> list[TopicPartition]:
    """Return the partitions of `topic`, waiting for metadata; fail if the topic is missing."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(
                f"topic {topic!r} does not exist; run `propstream topics apply` first"
            )
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)
