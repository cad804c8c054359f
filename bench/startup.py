"""`make run` start-up: `propstream up` to "ready + seeded", then Ctrl-C to everything stopped.

Modes (each run is a fresh `propstream up` process, exactly as `make run` starts it):

  warm-running  infrastructure already running (the shared one), topics and seeds present:
                a second `make run` next to `make infra-up`
  warm          infrastructure installed and its data present but stopped (own ports, a
                cache folder the first run of the mode fills): a second `make run` on a
                laptop, since Ctrl-C stopped the infrastructure the first one started
  cold          an empty cache folder each run: Kafka's jars resolved by Maven, stripe-mock
                built by Go, initdb, Kafka's storage format, topics and seeds from nothing
                (the machine's ~/.m2 and Go module caches are not emptied: no network)

Each figure is printed beside the 1-minute load average before and after the run: the
machine is shared, and start-up is CPU-bound (imports, JIT, consumer joins).

Run: python -m bench.startup --mode warm-running warm cold --runs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _env(mode: str, cache: Path | None, namespace: str) -> dict[str, str]:
    api = _free_port()
    while any(_listening(p) for p in (api + 100, api + 101)):
        api = _free_port()
    env = dict(os.environ) | {
        "PROPSTREAM_ENV": "test", "PROPSTREAM_NAMESPACE": namespace,
        "PROPSTREAM_API_PORT": str(api), "PROPSTREAM_MARKET_API_PORT": str(_free_port()),
        "PROPSTREAM_LOG_LEVEL": "WARNING",
        "PROPSTREAM_SEED_ADMIN_PASSWORD": "bench admin password 1",
        "PROPSTREAM_SEED_TRADER_PASSWORD": "bench trader password 1"}
    if mode != "warm-running":
        assert cache is not None
        env |= {"PROPSTREAM_CACHE_DIR": str(cache)}
    return env


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process (user + system) and of its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ((int(fields[11]) + int(fields[12])) / tick,
            (int(fields[13]) + int(fields[14])) / tick)


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    cmd = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
                    found[int(entry.name)] = b" ".join(cmd[-2:]).decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
    return found


def cpu_tree(pid: int) -> dict[str, float]:
    """CPU seconds so far: `up` itself (with the tools it ran and reaped), each child."""
    own, reaped = _cpu(pid)
    out = {"up": own + reaped}
    for child, name in _children(pid).items():
        with_children = _cpu(child)
        name = {"run api": "api", "market api": "market-api"}.get(name, name)
        out[name.removeprefix("group ")] = sum(with_children)
    return out


def one_run(env: dict[str, str], log: Path) -> tuple[float, float, dict[str, float]]:
    """Seconds to "propstream is up", seconds from SIGINT to exit, and phase marks."""
    began = time.monotonic()
    marks: dict[str, float] = {}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "propstream", "up"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    wanted = {"processes started": ("started market-workers",),
              "infra": ("stripe-mock already running", "stripe-mock started",
                        "stripe-mock unavailable"),
              "ready": ("every process is ready",), "up": ("propstream is up",)}
    cpu: dict[str, float] = {}
    try:
        while "up" not in marks:
            if proc.poll() is not None:
                raise SystemExit(f"`up` exited with {proc.returncode}:\n"
                                 + log.read_text()[-3000:])
            text = log.read_text(errors="replace")
            for name, needle in wanted.items():
                if name not in marks and any(n in text for n in needle):
                    marks[name] = time.monotonic() - began
                    if name == "up":
                        cpu = cpu_tree(proc.pid)
            if time.monotonic() - began > 600:
                raise SystemExit("not up within 10 minutes:\n" + text[-3000:])
            time.sleep(0.05)
    finally:
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    marks |= {f"cpu {k}": v for k, v in cpu.items()}
    marks["cpu total"] = sum(cpu.values())
    return marks["up"], time.monotonic() - asked, marks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", nargs="+", default=["warm-running", "warm", "cold"],
                        choices=["warm-running", "warm", "cold"])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="propstream-bench-startup-"))
    try:
        for mode in args.mode:
            namespace = "bs" + uuid.uuid4().hex[:8]
            warm_cache = scratch / "warm-cache"
            infra_ports = {"PROPSTREAM_KAFKA_PORT": _free_port(),
                           "PROPSTREAM_KAFKA_CONTROLLER_PORT": _free_port(),
                           "PROPSTREAM_PG_PORT": _free_port(),
                           "PROPSTREAM_REDIS_PORT": _free_port(),
                           "PROPSTREAM_STRIPE_MOCK_PORT": _free_port()}
            runs = args.runs + (1 if mode != "cold" else 0)  # a first run fills the caches
            for i in range(runs):
                cache = (scratch / f"cold-{i}") if mode == "cold" else warm_cache
                env = _env(mode, cache, namespace)
                if mode != "warm-running":
                    env |= {k: str(v) for k, v in infra_ports.items()}
                load_before = _load()
                took, stopped, marks = one_run(env, scratch / f"{mode}-{i}.log")
                label = "fill" if mode != "cold" and i == 0 else f"run {i}"
                phases = ", ".join(f"{k} {v:.1f}" for k, v in marks.items())
                print(f"{mode:<12} {label:<6} ready+seeded {took:6.1f} s  stop {stopped:4.1f} s"
                      f"  load {load_before:.2f} -> {_load():.2f}  [{phases}]", flush=True)
                if mode == "cold":
                    _drop_pg(cache)
                    shutil.rmtree(cache, ignore_errors=True)
            if mode == "warm":
                _drop_pg(warm_cache)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _drop_pg(cache: Path) -> None:
    from kernel.infra.postgres import _data_root

    root = _data_root(cache)
    if root != cache / "postgres":
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
