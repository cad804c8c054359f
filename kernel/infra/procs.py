"""Process helpers for the local infrastructure: pid files, port checks, waiting."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kernel.exceptions import InfraError


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().split()
        return int(text[0]) if text else None
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def running(pidfile: Path) -> int | None:
    pid = read_pid(pidfile)
    return pid if alive(pid) else None


def ensure_port_free(host: str, port: int, *, what: str, variable: str) -> None:
    if port_open(host, port):
        raise InfraError(
            f"port {port} on {host} is already taken by another process, so {what} cannot "
            f"start there: stop that process or choose another port with {variable}=<port>"
        )


def spawn(argv: Sequence[str], *, log: Path, pidfile: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start a daemon in its own session, output to `log`, pid into `pidfile`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            preexec_fn=_raise_open_files,
        )
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def run_tool(argv: Sequence[str], *, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool (mvn, go, initdb, pg_ctl …) to completion, capturing its output.

    It runs in its own process group, so an interruption (Ctrl-C, SIGTERM raised as
    KeyboardInterrupt) stops the tool and every process it started, not just the first."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop_group(proc)
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _stop_group(proc: subprocess.Popen[str], grace: float = 2.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader is gone; its group may live on: make sure nothing of it does.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def _raise_open_files() -> None:
    """A broker holds files per partition segment: give it the hard limit, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop_pid(pid: int, *, grace: float = 30.0) -> bool:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Return True if it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            _reap(pid)
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None,
             pid: int | None = None) -> float:
    """Poll `check` until it holds; return seconds waited, or raise naming the log to read."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        if pid is not None and not alive(pid):
            raise InfraError(f"{what} exited during start-up; {_tail_hint(log)}")
        time.sleep(0.2)
    raise InfraError(f"{what} did not become ready within {timeout:.0f} s; {_tail_hint(log)}")


def _tail_hint(log: Path | None) -> str:
    if log is None or not log.exists():
        return "no log was written"
    lines = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f"see {log}: " + " | ".join(line.strip()[:200] for line in lines)


def apt_install(*packages: str, why: str) -> None:
    """Install Debian packages, or explain exactly what to run."""
    if shutil.which("apt-get") is None:
        raise InfraError(f"{why}, and apt-get is not available: install {' '.join(packages)}")
    if os.geteuid() != 0:
        raise InfraError(
            f"{why}: run `sudo apt-get install -y {' '.join(packages)}` and try again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = run_tool(argv, env=env)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InfraError(f"`{' '.join(argv)}` failed ({tail[0]}); {why}")


class PidfileServer:
    """A server we spawn ourselves and track by its pid file: status, start, stop."""

    pidfile: Path
    log: Path
    grace: float = 10.0  # seconds between SIGTERM and SIGKILL on `down`

    @property
    def port(self) -> int:
        raise NotImplementedError

    def status(self) -> str:
        pid = running(self.pidfile)
        return f"running (pid {pid}, port {self.port})" if pid else "stopped"

    def launch(self, argv: Sequence[str], *, host: str, what: str, timeout: float = 20) -> str:
        """Spawn `argv` and wait until it listens on its port."""
        pid = spawn(argv, log=self.log, pidfile=self.pidfile)
        waited = wait_for(lambda: port_open(host, self.port), timeout=timeout, what=what,
                          log=self.log, pid=pid)
        return f"started (pid {pid}, port {self.port}) in {waited:.1f} s"

    def down(self, grace: float | None = None) -> str:
        pid = running(self.pidfile)
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return "not running"
        grace = self.grace if grace is None else min(grace, self.grace)
        killed = stop_pid(pid, grace=grace)
        self.pidfile.unlink(missing_ok=True)
        return f"{f'killed after {grace:g} s' if killed else 'stopped'} (pid {pid})"
