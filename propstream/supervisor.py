"""`propstream up`: every platform process as a child, restarted when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from propstream.processes import PLATFORM


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(self, say: Callable[[str], None], *, metrics_ports: dict[str, int],
                 env: dict[str, str] | None = None) -> None:
        self.say = say
        self.env = env or dict(os.environ)
        self.metrics_ports = metrics_ports
        self.children = [
            Child(name, [sys.executable, "-m", "propstream", "run", *argv])
            for name, argv in PLATFORM.items()
        ]
        self.stopping = False

    def start(self, child: Child) -> None:
        env = dict(self.env)
        if child.name in self.metrics_ports:
            env["PROPSTREAM_METRICS_PORT"] = str(self.metrics_ports[child.name])
        child.proc = subprocess.Popen(child.argv, env=env)
        child.started_at = time.monotonic()
        self.say(f"started {child.name} (pid {child.proc.pid})")

    def run(self, *, on_ready: Callable[[], None] | None = None) -> int:
        def request_stop(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for child in self.children:
            self.start(child)
        if on_ready is not None:
            on_ready()
        while not self.stopping:
            for child in self.children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is None or time.monotonic() < child.next_start:
                    continue
                if child.next_start == 0.0:
                    # Back off 1, 2, 4 … 30 s; a process that ran a minute starts over.
                    if time.monotonic() - child.started_at > 60:
                        child.restarts = 0
                    delay = min(30.0, 2.0 ** child.restarts)
                    child.restarts += 1
                    child.next_start = time.monotonic() + delay
                    self.say(f"{child.name} exited with {code}; restarting in {delay:.0f} s")
                    continue
                child.next_start = 0.0
                self.start(child)
            time.sleep(0.2)
        self.say("stopping …")
        self.shutdown()
        return 0

    def shutdown(self, grace: float = 15.0) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.say(f"{child.name} stopped")
