"""Produce commands at RATE/s for DUR seconds. Usage: feeder.py TOPIC RATE DUR START_ID"""
import asyncio, json, sys, time
from aiokafka import AIOKafkaProducer

async def main(topic, rate, dur, start):
    p = AIOKafkaProducer(bootstrap_servers="127.0.0.1:29092", linger_ms=5)
    await p.start()
    i = start; t0 = time.time()
    while time.time() - t0 < dur:
        tick = time.time()
        for _ in range(rate // 10):
            agg = f"agg-{i % 1000}"
            await p.send(topic, json.dumps({"cmd_id": f"c-{i}", "agg": agg, "amount": 1}).encode(), key=agg.encode())
            i += 1
        await asyncio.sleep(max(0, 0.1 - (time.time() - tick)))
    await p.stop()
    print(f"feeder sent {i - start}", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
