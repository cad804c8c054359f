"""A local Redis server on its own port."""

from __future__ import annotations

import shutil
from pathlib import Path

from kernel.exceptions import InfraError
from kernel.infra.procs import PidfileServer, apt_install, ensure_port_free, running
from kernel.settings import Settings


class RedisServer(PidfileServer):
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
        return self.launch(argv, host=self.settings.host, what="Redis")
