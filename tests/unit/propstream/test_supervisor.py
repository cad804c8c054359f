"""`propstream up`'s supervisor: progress lines, readiness, crash reports, restarts, stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import infra
from kernel.infra.procs import _stop_group, alive
from propstream.groups import Backoff
from propstream.supervisor import Child, Supervisor, describe, is_ready


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


@pytest.fixture
def sleepers() -> list[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_progress_names_what_is_ready_and_what_each_group_still_waits_for(
        tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]) -> None:
    api = Child("api", [], ready_url="http://x/readyz", proc=_sleeper(), ready=True)
    market = Child("market-api", [], ready_url="http://y/readyz", proc=_sleeper())
    status = tmp_path / "core.json"
    status.write_text(json.dumps({"instrument-decider": "starting", "tier-decider": "running",
                                  "assessment-policy": "crashed: ValueError: x; restart in 2 s"}))
    core = Child("core-workers", [], status_file=status, proc=_sleeper())
    market_workers = Child("market-workers", [], status_file=tmp_path / "none.json",
                           proc=_sleeper())
    sleepers += [c.proc for c in (api, market, core, market_workers) if c.proc]
    gone = Child("gone", [])
    line = describe([api, market, core, market_workers, gone], 12.4)
    assert line == ("waiting 12 s: market-api (not answering yet), core-workers "
                    "(instrument-decider starting, assessment-policy crashed: ValueError: x; "
                    "restart in 2 s; 1/3 running), "
                    "market-workers (importing), gone (restarting); ready: api")


def test_a_group_is_ready_when_every_worker_runs_and_an_api_when_it_answers(
        tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]) -> None:
    status = tmp_path / "s.json"
    group = Child("g", [], status_file=status, proc=_sleeper())
    api = Child("api", [], ready_url="http://api/readyz", proc=_sleeper())
    sleepers += [group.proc, api.proc]  # type: ignore[list-item]
    assert not is_ready(group, lambda url: True)  # nothing reported yet
    status.write_text(json.dumps({"a": "running", "b": "starting"}))
    assert not is_ready(group, lambda url: True)
    status.write_text(json.dumps({"a": "running", "b": "running"}))
    assert is_ready(group, lambda url: False)
    asked: list[str] = []
    assert not is_ready(api, lambda url: asked.append(url) or False)
    assert is_ready(api, lambda url: True) and asked == ["http://api/readyz"]
    assert api.proc is not None
    api.proc.kill()
    api.proc.wait()
    assert not is_ready(api, lambda url: True)  # a dead process is never ready


def test_a_child_that_dies_during_start_up_is_reported_with_its_tail_and_restarted(
        tmp_path: Path) -> None:
    said: list[str] = []
    marker = tmp_path / "runs"
    script = (f"import pathlib; p = pathlib.Path({str(marker)!r}); "
              "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
              "print('cannot reach kafka', flush=True); "
              "import time; time.sleep(30) if n else exit(3)")
    child = Child("core-workers", [sys.executable, "-c", script],
                  backoff=Backoff(cap=0.1), status_file=tmp_path / "st.json")
    supervisor = Supervisor(said.append, [child], grace=2.0)
    supervisor.start(child)
    try:
        deadline = time.monotonic() + 10
        while (marker.read_text() if marker.exists() else "") != "2":
            supervisor.tick()
            assert time.monotonic() < deadline, said
            time.sleep(0.05)
        report = next(line for line in said if "exited with 3" in line)
        assert "during start-up; restarting in 0.1 s" in report
        assert "    | cannot reach kafka" in report
    finally:
        supervisor.shutdown()
    assert said[-1] == "core-workers stopped"
    assert not (tmp_path / "st.json").exists()


def test_shutdown_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    said: list[str] = []
    ignores = ("import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
               "print('ready', flush=True); time.sleep(30)")
    child = Child("stubborn", [sys.executable, "-c", ignores])
    supervisor = Supervisor(said.append, [child], grace=0.5)
    supervisor.start(child)
    while not child.tail:
        time.sleep(0.02)
    began = time.monotonic()
    supervisor.shutdown()
    assert time.monotonic() - began < 3
    assert said[-1] == "stubborn stopped (killed after 0.5 s); its last lines:\n    | ready"
    assert child.proc is not None and child.proc.returncode == -signal.SIGKILL


def test_an_interrupted_tool_takes_the_processes_it_started_along() -> None:
    proc = subprocess.Popen(["bash", "-c", "sleep 30 & echo $!; wait"], text=True,
                            stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    _stop_group(proc, grace=1.0)  # what run_tool does on Ctrl-C
    deadline = time.monotonic() + 3
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


class FakeComponent:
    def __init__(self, name: str, log: list[str], *, running: bool = False,
                 interrupt: bool = False) -> None:
        self.name, self.log, self.running, self.interrupt = name, log, running, interrupt

    def status(self) -> str:
        return "running (pid 1, port 1)" if self.running else "stopped"

    def up(self) -> str:
        if self.running:
            return "already running (pid 1)"
        if self.interrupt:  # Ctrl-C while it was being started: it may be half up
            raise KeyboardInterrupt
        self.running = True
        return "started"

    def down(self, grace: float | None = None) -> str:
        self.log.append(f"down {self.name} {grace}")
        return "stopped"


def test_ctrl_c_during_infra_up_stops_what_it_started_and_the_one_starting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    parts = [FakeComponent("postgres", log), FakeComponent("redis", log, running=True),
             FakeComponent("kafka", log, interrupt=True), FakeComponent("stripe-mock", log)]
    monkeypatch.setattr(infra, "components", lambda settings: parts)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        infra.up(object(), said.append)  # type: ignore[arg-type]
    assert sorted(log) == ["down kafka 4.0", "down postgres 4.0"]  # redis ran before: kept
    assert "interrupted; stopping what it started: postgres, kafka" in said


class LaunchedEarly(FakeComponent):
    def launch_early(self) -> None:
        self.log.append(f"launch {self.name}")


def test_a_component_launched_early_is_stopped_when_a_later_one_is_interrupted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    parts = [FakeComponent("postgres", log, interrupt=True), LaunchedEarly("kafka", log)]
    monkeypatch.setattr(infra, "components", lambda settings: parts)
    with pytest.raises(KeyboardInterrupt):
        infra.up(object(), lambda line: None)  # type: ignore[arg-type]
    # Kafka was launched first and boots while PostgreSQL starts; both are stopped.
    assert log[0] == "launch kafka"
    assert sorted(log[1:]) == ["down kafka 4.0", "down postgres 4.0"]
