"""A worker process of a partition-parallel rebuild (`kernel.rebuild` states the protocol).

Started by the coordinator as `python -m kernel.rebuild_worker <fd>`, `fd` being its end of a
socket pair: it receives its job (the runner factory, its partitions, whether the tables
were just dropped, the progress tick), reports `ready` with the records it has to read,
waits for `run`, reports `progress` every tick and `done` (events, CPU s, wall s) at the
end, or `failed` with the error. Its coordinator gone (end of file on the socket), it exits
at once: the lease went with the coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from kernel.log import TopicPartition
from kernel.observability import get_logger
from kernel.rebuild import RebuildFailed, RunnerFactory, records_to_read

log = get_logger(__name__)


def main(argv: list[str]) -> None:
    pipe = Connection(int(argv[1]))
    factory, partitions, fresh, tick = pipe.recv()
    try:
        import uvloop
        uvloop.run(work(factory, partitions, pipe, fresh=fresh, tick=tick))
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the coordinator may be gone
            pipe.send(("failed", "".join(traceback.format_exception_only(exc)).strip()))
        log.error("rebuild worker failed", error=traceback.format_exc())
        raise SystemExit(1) from None


async def work(factory: RunnerFactory, partitions: list[TopicPartition], pipe: Connection, *,
               fresh: bool, tick: float) -> None:
    from kernel.runtime import settle_heap

    loop = asyncio.get_running_loop()
    orders: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def receive() -> None:
        try:
            orders.put_nowait(pipe.recv())
        except (EOFError, OSError):
            # The coordinator is gone, and its lease with it: stop writing now. A transaction
            # left open is rolled back by PostgreSQL; nothing committed is torn.
            os._exit(3)

    loop.add_reader(pipe.fileno(), receive)
    runner = factory()
    runner.only = frozenset(partitions)
    runner.under_lease = True
    runner.fresh = fresh
    await runner.start()
    try:
        records = await records_to_read(runner)
        settle_heap()
        pipe.send(("ready", records))
        order = await orders.get()
        if order[0] != "run":
            raise RebuildFailed(f"unexpected order {order[0]!r}")
        t, cpu = time.perf_counter(), time.process_time()

        async def tell() -> None:
            while True:
                await asyncio.sleep(tick)
                pipe.send(("progress", runner.applied))

        ticker = asyncio.create_task(tell())
        try:
            events = await runner.run(until_caught_up=True)
        finally:
            ticker.cancel()
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        await runner.stop()
    pipe.send(("done", events, cpu, wall))


if __name__ == "__main__":
    main(sys.argv)
