from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kernel.runtime import GC_THRESHOLDS, settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_heap_freezes_what_is_alive_and_raises_the_thresholds(restore_gc: None) -> None:
    gc.unfreeze()
    alive = [{"n": i} for i in range(1000)]  # tracked containers alive at "start-up"
    settle_heap()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(alive)
    # Cycles are still collected, only later: an explicit collection finds one.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
