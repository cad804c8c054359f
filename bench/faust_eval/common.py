"""Shared helpers: topic admin, command producer, topic readers, group-offset waiter."""
import asyncio, json, sys, time, collections
from aiokafka import AIOKafkaProducer, AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOT = "127.0.0.1:29092"
PARTS = 4


async def create_topics(names, parts=PARTS):
    adm = AIOKafkaAdminClient(bootstrap_servers=BOOT)
    await adm.start()
    try:
        existing = set(await adm.list_topics())
        new = [NewTopic(n, parts, 1) for n in names if n not in existing]
        if new:
            await adm.create_topics(new)
    finally:
        await adm.close()


async def produce_cmds(topic, n, naggs=1000, start=0):
    await create_topics([topic])
    p = AIOKafkaProducer(bootstrap_servers=BOOT, linger_ms=5, acks="all")
    await p.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for i in range(start, start + n):
            agg = f"agg-{i % naggs}"
            v = json.dumps({"cmd_id": f"c-{i}", "agg": agg, "amount": 1}).encode()
            futs.append(await p.send(topic, v, key=agg.encode()))
            if len(futs) >= 5000:
                await asyncio.gather(*futs); futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    print(f"produced {n} commands to {topic} in {time.perf_counter()-t0:.2f}s", flush=True)


async def end_offsets(topic):
    c = AIOKafkaConsumer(bootstrap_servers=BOOT)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return await c.end_offsets(tps) if tps else {}
    finally:
        await c.stop()


async def read_all(topic):
    """Read whole topic from beginning to current end. Returns list of (partition, offset, key, value, ts)."""
    c = AIOKafkaConsumer(bootstrap_servers=BOOT, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    out = []
    try:
        await c._client.force_metadata_update()
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return out
        c.assign(tps)
        ends = await c.end_offsets(tps)
        await c.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await c.getmany(timeout_ms=1000, max_records=10000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append((tp.partition, m.offset, m.key, m.value, m.timestamp))
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if await c.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await c.stop()
    return out


async def group_lag(group, topic):
    c = AIOKafkaConsumer(bootstrap_servers=BOOT, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or [])]
        ends = await c.end_offsets(tps)
        lag = 0
        for tp in tps:
            com = await c.committed(tp)
            lag += ends[tp] - (com or 0)
        return lag
    finally:
        await c.stop()


async def wait_group_done(group, topic, timeout=600, poll=1.0):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        lag = await group_lag(group, topic)
        if lag == 0:
            return time.perf_counter() - t0
        await asyncio.sleep(poll)
    raise TimeoutError(f"group {group} still lagging")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "produce":
        asyncio.run(produce_cmds(sys.argv[2], int(sys.argv[3]), start=int(sys.argv[4]) if len(sys.argv) > 4 else 0))
    elif cmd == "create":
        asyncio.run(create_topics(sys.argv[2:]))
    elif cmd == "lag":
        print(asyncio.run(group_lag(sys.argv[2], sys.argv[3])))
