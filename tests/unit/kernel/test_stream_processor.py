"""The at-least-once stream processor (prices) on the in-memory log."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.projection import Applied
from kernel.settings import Settings
from kernel.stream import StreamProcessor
from schemas import default_registry
from schemas.topics import CATALOGUE
from tests.integration.tapes import event_tape

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Crash(BaseException):
    """The process dies here."""


async def _processor(log: MemoryLog, handled: list[Applied], *,
                     crash_after: int | None = None) -> StreamProcessor:
    async def handle(events: Sequence[Applied]) -> None:
        if crash_after is not None and len(handled) + len(events) > crash_after:
            raise Crash
        handled.extend(events)

    p = StreamProcessor(Settings(env="test"), name="prices", topics=("instrument.events",),
                        registry=default_registry(), handle=handle, max_batch=10, log=log)
    await p.start()
    return p


async def test_events_reach_the_handler_poison_is_parked_and_a_crash_redelivers() -> None:
    log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
    tape = event_tape(symbols=4, events_per_symbol=10)
    records = [OutRecord(k, v) for k, v in tape.records]
    records.insert(5, OutRecord(records[5].key, b"\xff not an event"))
    await log.producer(client_id="feed").send_many("instrument.events", records)
    first: list[Applied] = []
    doomed = await _processor(log, first, crash_after=15)
    with pytest.raises(Crash):
        await doomed.run(until_idle=True)
    log.crash(doomed.runner.consumer)  # type: ignore[arg-type]
    second: list[Applied] = []
    heir = await _processor(log, second)
    await heir.run(until_idle=True)
    ids = {a.envelope.event_id for a in first} | {a.envelope.event_id for a in second}
    assert len(ids) == 40  # nothing lost; what was handled but not committed came again
    assert len(first) + len(second) >= 40
    [letter] = log.records("instrument.events.dlq")
    assert dict(letter.headers)["x-consumer"] == b"prices"
    await heir.stop()
