"""A service's workers as tasks of one process: which workers, restarts, stops, status."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kernel.manifest import Lazy, ServiceManifest, Worker
from propstream.groups import (
    Backoff,
    GroupRunner,
    groups,
    laptop_processes,
    members,
    read_status,
)
from propstream.manifests import SERVICES
from propstream.processes import PLATFORM


def test_each_service_has_one_group_of_exactly_its_platform_workers() -> None:
    found = groups(SERVICES)
    assert list(found) == ["core-workers", "market-workers"]
    for group in found.values():
        assert group.workers == tuple(w for w in group.service.workers() if w.platform)
        assert group.argv == ("group", group.name)
    grouped = [w.process for g in found.values() for w in g.workers]
    apis = {s.api.process for s in SERVICES if s.api is not None}
    # Every process of the Kubernetes layout runs in exactly one group, or is an API.
    assert sorted(grouped) == sorted(n for n in PLATFORM if n not in apis)
    assert "market-binance" not in grouped  # live venues stay out, as in the chart


def test_up_starts_the_apis_and_one_process_per_service() -> None:
    assert laptop_processes(SERVICES) == {
        "api": ("api",), "market-api": ("market", "api"), "ws-gateway": ("ws-gateway",),
        "core-workers": ("group", "core-workers"),
        "market-workers": ("group", "market-workers")}


def test_a_new_worker_in_a_manifest_joins_its_group_without_another_edit() -> None:
    toy = ServiceManifest(name="toy_service", settings=object, processors=(
        Worker(kind="market", name="widgets", factory=Lazy("x", "y")),
        Worker(kind="market", name="live", factory=Lazy("x", "y"), platform=False)))
    assert [w.process for w in groups([toy])["toy-workers"].workers] == ["market-widgets"]
    assert laptop_processes([toy]) == {"toy-workers": ("group", "toy-workers")}


def test_a_group_can_leave_out_named_workers_and_refuses_a_name_it_does_not_have() -> None:
    core = groups(SERVICES)["core-workers"]
    kept = members(core, ["user-decider", "projection-users"])
    assert [w.process for w in kept] == [w.process for w in core.workers
                                         if w.process not in ("user-decider", "projection-users")]
    assert members(core) == core.workers
    with pytest.raises(SystemExit, match="core-workers has no worker market-prices; its workers: "
                                         "instrument-decider"):
        members(core, ["market-prices"])


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_long_run() -> None:
    backoff = Backoff(cap=30.0, reset_after=60.0)
    assert [backoff.next_delay(1.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(61.0) == 1


class FakeRunner:
    """A runner whose run() fails `crashes` times (counted across instances) then runs."""

    log: list[str] = []

    def __init__(self, name: str, *, crash: list[int], stop_takes: float = 0.0,
                 start_takes: float = 0.0) -> None:
        self._name, self.crash, self.stop_takes, self.start_takes = (name, crash, stop_takes,
                                                                      start_takes)

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await asyncio.sleep(self.start_takes)
        self.log.append(f"start {self._name}")

    async def run(self) -> Any:
        if self.crash[0] > 0:
            self.crash[0] -= 1
            raise ValueError("poisoned")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.log.append(f"stop {self._name}")
        await asyncio.sleep(self.stop_takes)


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_crashed_worker_is_restarted_alone_and_every_worker_stops(
        tmp_path: Path) -> None:
    FakeRunner.log = []
    crashes = [1]
    status = tmp_path / "status.json"
    runner = GroupRunner("toy-workers", {
        "a": lambda: FakeRunner("a", crash=crashes),
        "b": lambda: FakeRunner("b", crash=[0])},
        status_file=status, backoff=lambda: Backoff(cap=0.05))
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await _until(lambda: FakeRunner.log.count("start a") == 2
                 and read_status(status).get("a") == "running")
    assert read_status(status) == {"a": "running", "b": "running"}
    assert runner.statuses["a"].restarts == 1 and runner.statuses["b"].restarts == 0
    assert FakeRunner.log.count("start b") == 1  # its neighbour kept running
    assert FakeRunner.log.count("stop a") == 1  # the crashed runner was stopped first
    stopping.set()
    await asyncio.wait_for(task, 2)
    assert json.loads(status.read_text()) == {"a": "stopped", "b": "stopped"}
    assert FakeRunner.log.count("stop a") == 2 and FakeRunner.log.count("stop b") == 1


@pytest.mark.asyncio
async def test_a_crash_is_reported_with_its_reason_while_waiting_to_restart(
        tmp_path: Path) -> None:
    FakeRunner.log = []
    status = tmp_path / "status.json"
    runner = GroupRunner("toy-workers", {"a": lambda: FakeRunner("a", crash=[5])},
                         status_file=status, backoff=lambda: Backoff(cap=30.0))
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await _until(lambda: read_status(status).get("a", "").startswith("crashed"))
    assert read_status(status)["a"] == "crashed: ValueError: poisoned; restart in 1 s"
    stopping.set()  # a stop request ends the backoff wait at once
    await asyncio.wait_for(task, 1)


@pytest.mark.asyncio
async def test_a_worker_that_does_not_stop_is_left_after_its_grace(tmp_path: Path) -> None:
    FakeRunner.log = []
    runner = GroupRunner("toy-workers", {
        "slow": lambda: FakeRunner("slow", crash=[0], stop_takes=30.0),
        "starting": lambda: FakeRunner("starting", crash=[0], start_takes=30.0)},
        stop_grace=0.2)
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await _until(lambda: runner.statuses["slow"].state == "running")
    assert runner.statuses["starting"].state == "starting"
    stopping.set()
    began = asyncio.get_running_loop().time()
    await asyncio.wait_for(task, 2)
    assert asyncio.get_running_loop().time() - began < 1.0
    # The one interrupted while starting was stopped as well.
    assert "stop starting" in FakeRunner.log
    assert {s.state for s in runner.statuses.values()} == {"stopped"}


def test_a_missing_or_torn_status_file_reads_as_nothing_reported(tmp_path: Path) -> None:
    assert read_status(tmp_path / "absent.json") == {}
    (tmp_path / "torn.json").write_text('{"a": "runn')
    assert read_status(tmp_path / "torn.json") == {}
