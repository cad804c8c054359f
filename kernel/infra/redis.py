"""A local Redis server on its own port."""

from __future__ import annotations

import shutil
from pathlib import Path

from kernel.exceptions import InfraError
from kernel.infra.procs import (
    apt_install,
    ensure_port_free,
    port_open,
    running,
    spawn,
    stop_pid,
    wait_for,
)
from kernel.settings import Settings


class RedisServer:
    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir: Path = settings.cache_dir / "redis"
        self.pidfile = settings.cache_dir / "run" / "redis.pid"
        self.log = self.dir / "redis.log"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def binary(self) -> str:
        found = shutil.which("redis-server")
        if found is None:
            apt_install("redis-server", why="redis-server is not on PATH")
            found = shutil.which("redis-server")
        if found is None:
            raise InfraError("redis-server is still missing after installing redis-server")
        return found

    def status(self) -> str:
        pid = running(self.pidfile)
        return f"running (pid {pid}, port {self.port})" if pid else "stopped"

    def up(self) -> str:
        pid = running(self.pidfile)
        if pid is not None:
            return f"already running (pid {pid})"
        binary = self.binary()
        ensure_port_free(self.settings.host, self.port, what="Redis",
                         variable="PROPSTREAM_REDIS_PORT")
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary, "--port", str(self.port), "--bind", self.settings.host,
            "--dir", str(self.dir), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--protected-mode", "yes",
        ]
        pid = spawn(argv, log=self.log, pidfile=self.pidfile)
        waited = wait_for(lambda: port_open(self.settings.host, self.port), timeout=20,
                          what="Redis", log=self.log, pid=pid)
        return f"started (pid {pid}, port {self.port}) in {waited:.1f} s"

    def down(self) -> str:
        pid = running(self.pidfile)
        if pid is None:
            return "not running"
        stop_pid(pid, grace=10)
        self.pidfile.unlink(missing_ok=True)
        return f"stopped (pid {pid})"
