"""How a parallel rebuild deals partitions to its workers (kernel.rebuild)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.log import TopicPartition
from kernel.rebuild import PARALLEL_FROM_RECORDS, default_workers, split


@given(st.integers(1, 24), st.integers(1, 8), st.integers(1, 3))
def test_every_partition_goes_to_exactly_one_worker_and_none_is_idle(
        partitions: int, workers: int, topics: int) -> None:
    tps = [TopicPartition(f"t{t}", p) for t in range(topics) for p in range(partitions)]
    shares = split(tps, workers)
    dealt = [tp for share in shares for tp in share]
    assert sorted(dealt) == sorted(tps)
    assert len(shares) == min(workers, partitions) and all(shares)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= topics  # as even as whole partition numbers allow


def test_co_partitioned_topics_keep_one_partition_number_in_one_worker() -> None:
    tps = [TopicPartition(t, p) for t in ("a", "b") for p in range(3)]
    for share in split(tps, 2):
        for number in {tp.partition for tp in share}:
            assert {TopicPartition("a", number), TopicPartition("b", number)} <= set(share)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux affinity")
def test_default_workers_is_one_per_partition_at_most_two_per_core() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_workers(1) == 1
    assert default_workers(2 * cores) == 2 * cores
    assert default_workers(64 * cores) == 2 * cores
    assert default_workers(0) == 1


def test_a_small_log_is_rebuilt_by_one_process_whatever_its_partitions() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_workers(64, records=PARALLEL_FROM_RECORDS - 1) == 1
    assert default_workers(64, records=0) == 1
    assert default_workers(64, records=PARALLEL_FROM_RECORDS) == 2 * cores
    assert default_workers(64, records=None) == 2 * cores
