"""A local PostgreSQL cluster in the project's cache folder, on its own port."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from kernel.exceptions import InfraError
from kernel.infra.procs import apt_install, ensure_port_free, port_open, run_tool, wait_for
from kernel.settings import Settings

# Durability against a process crash is what the tests prove; an OS crash is out of scope
# locally, so the WAL is not forced to disk (fsync off) to keep tests and rebuilds quick.
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
}


def _data_root(cache_dir: Path) -> Path:
    """The cluster lives in the cache folder, unless the `postgres` user (which the server
    runs as under root) cannot reach it, as in a clone under a private temporary folder."""
    preferred = cache_dir / "postgres"
    if os.geteuid() != 0:
        return preferred
    # Probe the folder as it will be (created now), so every later call answers the same.
    cache_dir.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(cache_dir)],
                           capture_output=True, check=False)
    if probe.returncode == 0:
        return preferred
    digest = hashlib.sha1(str(cache_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"propstream-postgres-{digest}"


class PostgresServer:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root: Path = _data_root(settings.cache_dir)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    @property
    def port(self) -> int:
        return self.settings.pg_port

    def bindir(self) -> Path:
        found = shutil.which("pg_ctl")
        if found:
            return Path(os.path.realpath(found)).parent
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not candidates:
            apt_install("postgresql", why="no PostgreSQL server binaries were found")
            candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not candidates:
            raise InfraError("PostgreSQL binaries are still missing after installing postgresql")
        return Path(candidates[-1]).parent

    def _as_owner(self, argv: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        return ["runuser", "-u", "postgres", "--", *argv]

    def _run(self, argv: list[str], what: str) -> None:
        result = run_tool(self._as_owner(argv))
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-2:]
            raise InfraError(f"{what} failed: {' | '.join(tail)} (log: {self.log})")

    def _pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _alive(self) -> bool:
        from kernel.infra.procs import alive

        return alive(self._pid())

    def status(self) -> str:
        return f"running (pid {self._pid()}, port {self.port})" if self._alive() else "stopped"

    def up(self) -> str:
        if self._alive():
            return f"already running (pid {self._pid()})"
        bindir = self.bindir()
        ensure_port_free(self.settings.host, self.port, what="PostgreSQL",
                         variable="PROPSTREAM_PG_PORT")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._run(["true"], "checking the postgres user")
            shutil.chown(self.root, user="postgres")
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            # initdb into a folder of its own, renamed into place once complete: an
            # interrupted initdb leaves nothing the next start would take for a cluster.
            partial = self.data.with_name(self.data.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(self.data, ignore_errors=True)  # no PG_VERSION: never initialised
            self._run(
                [str(bindir / "initdb"), "-D", str(partial), "-U", "propstream",
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                "initdb",
            )
            partial.rename(self.data)
        opts = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
             "-t", "60", "-o", f"-p {self.port} {opts}", "start"],
            "pg_ctl start",
        )
        waited = wait_for(lambda: port_open(self.settings.host, self.port), timeout=30,
                          what="PostgreSQL", log=self.log)
        self._ensure_database()
        done = "initialised and started" if fresh else "started"
        return f"{done} (pid {self._pid()}, port {self.port}) in {waited:.1f} s"

    def _ensure_database(self) -> None:
        import psycopg

        url = f"postgresql://propstream@{self.settings.host}:{self.port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'propstream'"
            ).fetchone()
            if not exists:
                conn.execute("CREATE DATABASE propstream")

    def down(self, grace: float | None = None) -> str:
        if not self._alive():
            return "not running"
        pid = self._pid()
        wait = str(max(1, round(grace))) if grace is not None else "60"
        try:
            self._run([str(self.bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                       "-t", wait, "stop"], "pg_ctl stop")
        except InfraError:
            if not self._alive():
                raise
            self._run([str(self.bindir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                       "-w", "stop"], "pg_ctl stop -m immediate")
            return f"stopped (pid {pid}, immediate after {wait} s)"
        return f"stopped (pid {pid})"
