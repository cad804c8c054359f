"""Plain aiokafka decider loop: getmany -> dict state -> produce event+reply+state-changelog -> flush -> commit.
Usage: plain_loop.py GROUP CMD_TOPIC EVT_TOPIC REPLY_TOPIC STATE_TOPIC TARGET_N"""
import asyncio, json, sys, time
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

BOOT = "127.0.0.1:29092"


def decide(cmd, state):
    return [{"type": "Incremented", "cmd_id": cmd["cmd_id"], "agg": cmd["agg"], "seq": state + 1}]


async def main(group, ct, et, rt, st, target):
    c = AIOKafkaConsumer(ct, bootstrap_servers=BOOT, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_poll_records=2000)
    p = AIOKafkaProducer(bootstrap_servers=BOOT, linger_ms=5, acks="all")
    await c.start(); await p.start()
    state = {}
    n = 0
    try:
        while n < target:
            batch = await c.getmany(timeout_ms=500, max_records=2000)
            for tp, msgs in batch.items():
                for m in msgs:
                    cmd = json.loads(m.value)
                    agg = cmd["agg"]
                    s = state.get(agg, 0)
                    evs = decide(cmd, s)
                    for e in evs:
                        e["w"] = "plain"; e["ts"] = time.time()
                        await p.send(et, json.dumps(e).encode(), key=m.key, partition=tp.partition)
                    state[agg] = s + len(evs)
                    await p.send(st, json.dumps(state[agg]).encode(), key=m.key, partition=tp.partition)
                    await p.send(rt, json.dumps({"cmd_id": cmd["cmd_id"], "ok": True}).encode(), key=m.key, partition=tp.partition)
                    n += 1
                    if n == 1:
                        print(f"FIRST_MSG {time.time():.3f}", file=sys.stderr, flush=True)
                    if n % 10000 == 0:
                        print(f"PROCESSED {n} {time.time():.3f}", file=sys.stderr, flush=True)
            if batch:
                await p.flush()
                await c.commit()
    finally:
        await c.stop(); await p.stop()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], a[4], int(a[5])))
