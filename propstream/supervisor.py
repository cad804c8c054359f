"""`propstream up`: the platform's processes as children, restarted when they die.

On a laptop these are each service's API and one process per service for its workers
(`propstream.groups`). While they start, the supervisor prints every few seconds which are
ready and which are still starting, with no give-up timer; a child that dies is reported with
the tail of its output and restarted with backoff. A stop request (SIGINT, SIGTERM) at any
moment sends SIGTERM to every child and SIGKILL after a grace period.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from propstream.groups import STATUS_FILE_ENV, Backoff, read_status

TAIL_LINES = 15
PROGRESS_EVERY = 3.0  # seconds between two progress lines while waiting


@dataclass
class Child:
    """One child process: an API (ready when `ready_url` answers 200) or a group of workers
    (ready when every worker reports `running` in `status_file`)."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    status_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    next_start: float = 0.0
    started_at: float = 0.0
    ready: bool = False
    reader: threading.Thread | None = None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(
        maxlen=TAIL_LINES))

    def workers(self) -> dict[str, str]:
        return read_status(self.status_file) if self.status_file is not None else {}


def describe(children: list[Child], waited: float) -> str:
    """One progress line: what is ready, what is still starting (and which of a group's
    workers), what crashed and when it restarts."""
    ready: list[str] = []
    waiting: list[str] = []
    for child in children:
        if child.ready:
            ready.append(child.name)
            continue
        if child.proc is None or child.proc.poll() is not None:
            waiting.append(f"{child.name} (restarting)")
            continue
        workers = child.workers()
        if child.status_file is not None:
            if not workers:
                waiting.append(f"{child.name} (importing)")
                continue
            # A crashed worker with its reason and when it restarts; others by their state.
            pending = [f"{w} {s[:120] if s.startswith('crashed') else s.split(':')[0]}"
                       for w, s in workers.items() if s != "running"]
            running = len(workers) - len(pending)
            shown = ", ".join(pending[:4]) + (f" and {len(pending) - 4} more"
                                              if len(pending) > 4 else "")
            waiting.append(f"{child.name} ({shown}; {running}/{len(workers)} running)")
        else:
            waiting.append(f"{child.name} (not answering yet)")
    parts = [", ".join(waiting)] if waiting else []
    if ready:
        parts.append(f"ready: {', '.join(ready)}")
    return f"waiting {waited:.0f} s: " + "; ".join(parts)


def is_ready(child: Child, probe: Callable[[str], bool]) -> bool:
    """Whether a running child is ready now (an API answers /readyz; a group's workers all
    run)."""
    if child.proc is None or child.proc.poll() is not None:
        return False
    if child.ready_url is not None:
        return probe(child.ready_url)
    workers = child.workers()
    return bool(workers) and all(state == "running" for state in workers.values())


class HttpProbe:
    """GET a readiness URL; 200 is ready. One client for every probe (a client per request
    builds an SSL context each time: most of the supervisor's CPU while it waits), and at
    most one probe per URL every `every` seconds."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self.client: Any = None

    def __call__(self, url: str) -> bool:
        import httpx

        now = time.monotonic()
        if now - self.last.get(url, -self.every) < self.every:
            return False
        self.last[url] = now
        if self.client is None:
            self.client = httpx.Client(timeout=1.0)
        try:
            return bool(self.client.get(url).status_code == 200)
        except httpx.HTTPError:
            return False


class Supervisor:
    def __init__(self, say: Callable[[str], None], children: list[Child], *,
                 env: Mapping[str, str] | None = None, grace: float = 5.0,
                 probe: Callable[[str], bool] | None = None) -> None:
        self.say = say
        self.env = dict(env if env is not None else os.environ)
        self.children = children
        self.grace = grace
        self.probe = probe if probe is not None else HttpProbe()
        self.stopping = False
        self.all_ready = False
        self.shut_down = False
        self._lock = threading.Lock()

    def request_stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self.stopping = True

    def start(self, child: Child) -> None:
        env = dict(self.env) | child.env
        if child.status_file is not None:
            child.status_file.unlink(missing_ok=True)
            env[STATUS_FILE_ENV] = str(child.status_file)
        child.ready = False
        child.proc = subprocess.Popen(child.argv, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        child.started_at = time.monotonic()
        child.reader = threading.Thread(target=self._forward, args=(child, child.proc.stdout),
                                        name=f"out-{child.name}", daemon=True)
        child.reader.start()
        self.say(f"started {child.name} (pid {child.proc.pid})")

    def _forward(self, child: Child, stream: IO[bytes] | None) -> None:
        """Pass a child's output through, and keep its tail for a crash report."""
        if stream is None:
            return
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            child.tail.append(line)
            with self._lock:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    def prestart(self) -> None:
        """Start every child before `run` (as `up` does while the infrastructure boots: the
        children import their code, then wait at the start gate, `propstream.gate`)."""
        for child in self.children:
            if child.proc is None:
                self.start(child)

    def run(self, *, on_ready: Callable[[], None] | None = None) -> int:
        """Start every child and keep them running until a stop request; `on_ready` runs in
        a thread once every child is ready (seeding, the banner)."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        began = time.monotonic()
        last_progress = began
        try:
            for child in self.children:
                if self.stopping:
                    break
                if child.proc is None:  # not already started by `prestart`
                    self.start(child)
            while not self.stopping:
                self.tick()
                now = time.monotonic()
                if not self.all_ready:
                    if all(c.ready for c in self.children):
                        self.all_ready = True
                        self.say(f"every process is ready after {now - began:.1f} s")
                        if on_ready is not None:
                            threading.Thread(target=on_ready, name="on-ready",
                                             daemon=True).start()
                    elif now - last_progress >= PROGRESS_EVERY:
                        last_progress = now
                        self.say(describe(self.children, now - began))
                time.sleep(0.2)
        finally:
            self.say("stopping …")
            self.shutdown()
        return 0

    def tick(self) -> None:
        """Check every child once: readiness, crashes, restarts due."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if child.next_start and now >= child.next_start and not self.stopping:
                    child.next_start = 0.0
                    self.start(child)
                continue
            code = child.proc.poll()
            if code is None:
                if not child.ready and is_ready(child, self.probe):
                    child.ready = True
                    self.say(f"{child.name} ready after {now - child.started_at:.1f} s")
                continue
            if child.reader is not None:
                child.reader.join(timeout=1.0)  # its last lines, up to the end of its output
            delay = child.backoff.next_delay(now - child.started_at)
            phase = "running" if child.ready else "start-up"
            tail = "\n".join(f"    | {line}" for line in list(child.tail)[-TAIL_LINES:])
            self.say(f"{child.name} exited with {code} during {phase}; restarting in "
                     f"{delay:g} s. Its last lines:\n{tail or '    | (no output)'}")
            child.proc = None
            child.ready = False
            child.next_start = now + delay
            if child.status_file is not None:
                child.status_file.unlink(missing_ok=True)

    def shutdown(self) -> None:
        """SIGTERM to every child, SIGKILL to those still there after the grace period;
        once (a second call returns at once)."""
        if self.shut_down:
            return
        self.shut_down = True
        self.stopping = True
        running = [c for c in self.children if c.proc is not None]
        for child in running:
            assert child.proc is not None
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                self.say(f"{child.name} stopped")
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
                tail = "\n".join(f"    | {line}" for line in list(child.tail)[-5:])
                self.say(f"{child.name} stopped (killed after {self.grace:g} s)"
                         + (f"; its last lines:\n{tail}" if tail else ""))
        for child in self.children:
            if child.status_file is not None:
                child.status_file.unlink(missing_ok=True)
                child.status_file.with_name(child.status_file.name + ".tmp").unlink(
                    missing_ok=True)
