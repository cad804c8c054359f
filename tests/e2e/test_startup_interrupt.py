"""Ctrl-C at any moment of `propstream up` (what `make run` calls) stops everything within
10 s and leaves no process, listening port, pid file or lock behind; a later run still works.

Each `up` runs on infrastructure of its own (own ports, own cache folder, with the shared
Kafka jars and stripe-mock binary linked in so nothing is downloaded), so the interruptions
land in `infra up` (initdb, Kafka's storage format and start), in the children's start-up
and in seeding. The points are drawn from a seeded random generator: the seed is printed,
and PROPSTREAM_TEST_SEED replays a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kernel.infra.postgres import _data_root
from kernel.settings import Settings

pytestmark = pytest.mark.integration

STOP_WITHIN = 10.0
MARK = "PROPSTREAM_STARTUP_TEST_MARK"


_TAKEN: set[int] = set()


def _free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out may be taken
    again by any client's outgoing connection (a busy machine has thousands) before `up`
    binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low - 200)
        if port in _TAKEN or _listening(port):
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _TAKEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port_block() -> int:
    """A base port whose +100 and +101 (the groups' metrics ports) are free as well."""
    for _ in range(50):
        base = _free_port()
        if not any(p in _TAKEN or _listening(p) for p in (base + 100, base + 101)):
            _TAKEN.update((base + 100, base + 101))
            return base
    raise RuntimeError("no free block of ports")


def _ours(mark: str, paths: list[str]) -> list[str]:
    """Processes started by this test's `up`: they carry its mark in their environment or
    one of its folders on their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state == "Z":
            continue
        if f"{MARK}={mark}".encode() in environ or any(p in cmdline for p in paths):
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def _locked(path: Path) -> bool:
    """Whether another process holds a POSIX lock on `path` (as Kafka does on its log dir)."""
    if not path.exists():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(fh, fcntl.LOCK_UN)
        return False


def test_ctrl_c_at_random_points_of_start_up_leaves_nothing_behind(tmp_path: Path) -> None:
    seed = int(os.environ.get("PROPSTREAM_TEST_SEED", random.randrange(1 << 30)))
    print(f"PROPSTREAM_TEST_SEED={seed}")
    rng = random.Random(seed)
    shared = Settings(env="test").cache_dir.resolve()
    cache = tmp_path / "cache"
    (cache / "kafka").mkdir(parents=True)
    # What `infra up` would otherwise fetch or build: linked in, read only.
    (cache / "kafka" / "libs").symlink_to(shared / "kafka" / "libs")
    if (shared / "bin").is_dir():
        (cache / "bin").symlink_to(shared / "bin")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    mark = uuid.uuid4().hex
    api = _free_port_block()
    infra_ports = {"PROPSTREAM_KAFKA_PORT": _free_port(),
                   "PROPSTREAM_KAFKA_CONTROLLER_PORT": _free_port(),
                   "PROPSTREAM_PG_PORT": _free_port(), "PROPSTREAM_REDIS_PORT": _free_port(),
                   "PROPSTREAM_STRIPE_MOCK_PORT": _free_port()}
    market = _free_port()
    env = dict(os.environ) | {k: str(v) for k, v in infra_ports.items()} | {
        "PROPSTREAM_CACHE_DIR": str(cache), "PROPSTREAM_API_PORT": str(api),
        "PROPSTREAM_MARKET_API_PORT": str(market), "PROPSTREAM_LOG_LEVEL": "WARNING",
        "PROPSTREAM_ENV": "test",
        "PROPSTREAM_SEED_ADMIN_PASSWORD": "e2e admin password 1",
        "PROPSTREAM_SEED_TRADER_PASSWORD": "e2e trader password 1",
        "TMPDIR": str(scratch), MARK: mark}
    ports = [*infra_ports.values(), api, market, api + 100, api + 101]
    pg_root = _data_root(cache)
    paths = [str(cache), str(pg_root)]
    # Four interruptions at random moments of each phase of start-up (a random delay after
    # the line that opens the phase, so the phases are hit however loaded the machine is):
    # the children importing and Kafka being formatted and launched; PostgreSQL up and the
    # rest of the infrastructure starting; the workers starting; seeding. Then a run left
    # to come up completely on what the interrupted ones left: it must work.
    points: list[tuple[str, float] | None] = [
        ("", rng.uniform(0.3, 2.5)),
        ("postgres  ", rng.uniform(0.0, 2.0)),
        ("waiting ", rng.uniform(0.0, 3.0)),
        ("every process is ready", rng.uniform(0.0, 1.5)),
        None]
    try:
        for point in points:
            _interrupt_once(env, point, mark=mark, paths=paths, ports=ports, cache=cache,
                            pg_root=pg_root, scratch=scratch)
    finally:
        for line in _ours(mark, paths):  # never leave a stray behind, even on failure
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(pg_root, ignore_errors=True)


def _interrupt_once(env: dict[str, str], point: tuple[str, float] | None, *, mark: str,
                    paths: list[str], ports: list[int], cache: Path, pg_root: Path,
                    scratch: Path) -> None:
    log = scratch.parent / "up.log"
    with open(log, "w") as out:
        # The last run is not interrupted: it comes up (seeding is left to the interrupted
        # ones and to test_platform_up, to keep this file within a minute).
        seed = ["--seed"] if point is not None else ["--no-seed"]
        # Unbuffered, so a slow stop shows the last step `up` reached (a file is
        # block-buffered: one 30 s stop left no line after the banner to say where it was).
        proc = subprocess.Popen([sys.executable, "-m", "propstream", "up", *seed],
                                env={**env, "PYTHONUNBUFFERED": "1"},
                                stdout=out, stderr=subprocess.STDOUT)
    began = time.monotonic()
    marker, delay = point if point is not None else ("propstream is up", 0.0)
    seen: float | None = None
    while time.monotonic() - began < 150 and proc.poll() is None:
        text = log.read_text(errors="replace")
        if seen is None and (marker in text or "propstream is up" in text):
            seen = time.monotonic()
        if seen is not None and time.monotonic() - seen >= delay:
            break
        time.sleep(0.02)
    text = log.read_text(errors="replace")
    if point is None:
        assert "propstream is up" in text, text[-3000:]
    last = [line for line in text.splitlines() if line and not line.startswith("{")][-1:]
    at = time.monotonic() - began
    print(f"SIGINT at {at:.1f} s ({marker or 'start'!r} + {delay:.1f} s), after: "
          f"{last[0][:100] if last else '(nothing yet)'}")
    assert proc.poll() is None, f"`up` ended before it was interrupted:\n{text[-3000:]}"
    proc.send_signal(signal.SIGINT)
    asked = time.monotonic()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    took = time.monotonic() - asked
    text = log.read_text(errors="replace")
    print(f"  stopped in {took:.1f} s with {proc.returncode}")
    assert took <= STOP_WITHIN, f"took {took:.1f} s to stop:\n{text[-3000:]}"
    # Stopped cleanly, or (a Ctrl-C while the CLI was still loading) at once, saying so.
    assert proc.returncode == 0 or (proc.returncode == 128 + signal.SIGINT
                                    and "nothing was started" in text), text[-3000:]
    left = _ours(mark, paths)
    assert not left, f"left running: {left}\n{text[-3000:]}"
    listening = [p for p in ports if _listening(p)]
    assert not listening, f"still listening: {listening}\n{text[-3000:]}"
    pidfiles = list((cache / "run").glob("*.pid")) if (cache / "run").exists() else []
    assert not pidfiles, pidfiles
    assert not (pg_root / "data" / "postmaster.pid").exists()
    assert not _locked(cache / "kafka" / "data" / ".lock")
    assert not any(scratch.iterdir()), list(scratch.iterdir())  # status files, run folder
