"""A service's workers as tasks of one process: the laptop layout of `propstream up`.

`propstream run group core-workers` runs every platform worker of the core manifest in one
event loop; each is started, run and stopped as `propstream run <kind> <name>` would, and
restarted with backoff when it crashes, without touching its neighbours. Log lines carry the
worker's process name (`process=instrument-decider`). Kubernetes keeps one process per worker.

The group reports each worker's state (starting, running, crashed) into a small JSON file
named by PROPSTREAM_STATUS_FILE, which `propstream up` reads to show its progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.manifest import Runner, ServiceManifest, Worker
from kernel.observability import get_logger

log = get_logger(__name__)

STATUS_FILE_ENV = "PROPSTREAM_STATUS_FILE"
STOP_GRACE = 4.0  # seconds a worker's stop() may take before the group moves on


@dataclass(frozen=True)
class Group:
    """The platform workers of one service, run as one process (`<service>-workers`)."""

    name: str
    service: ServiceManifest
    workers: tuple[Worker, ...]

    @property
    def argv(self) -> tuple[str, ...]:
        """The arguments after `propstream run`."""
        return ("group", self.name)


def group_name(service: ServiceManifest) -> str:
    """`core` -> `core-workers`, `market_data` -> `market-workers` (as `market-api`)."""
    return f"{service.name.split('_')[0]}-workers"


def groups(services: Iterable[ServiceManifest]) -> dict[str, Group]:
    """Group name -> the service's platform workers, in manifest order."""
    out: dict[str, Group] = {}
    for service in services:
        members = tuple(w for w in service.workers() if w.platform)
        if members:
            out[group_name(service)] = Group(group_name(service), service, members)
    return out


def laptop_processes(services: Iterable[ServiceManifest]) -> dict[str, tuple[str, ...]]:
    """What `propstream up` starts: each service's API, then one process per service for
    its workers. Process name -> argv after `propstream run`."""
    services = tuple(services)
    out: dict[str, tuple[str, ...]] = {}
    for service in services:
        if service.api is not None:
            out[service.api.process] = service.api.argv
    for name, group in groups(services).items():
        out[name] = group.argv
    return out


@dataclass
class Backoff:
    """Restart delays 1, 2, 4 … `cap` s; a worker that ran `reset_after` s starts over."""

    cap: float = 30.0
    reset_after: float = 60.0
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.reset_after:
            self.failures = 0
        delay = min(self.cap, 2.0 ** self.failures)
        self.failures += 1
        return delay


@dataclass
class WorkerStatus:
    state: str = "starting"  # starting | running | crashed | stopping | stopped
    detail: str = ""
    restarts: int = 0

    def text(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


@dataclass
class GroupRunner:
    """Run `factories` (process name -> a runner builder) as tasks until `stopping` is set."""

    name: str
    factories: Mapping[str, Callable[[], Runner]]
    status_file: Path | None = None
    backoff: Callable[[], Backoff] = Backoff
    stop_grace: float = STOP_GRACE
    statuses: dict[str, WorkerStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.statuses = {name: WorkerStatus() for name in self.factories}

    def _set(self, worker: str, state: str, detail: str = "") -> None:
        status = self.statuses[worker]
        status.state, status.detail = state, detail
        self._write_status()

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        payload = {name: s.text() for name, s in self.statuses.items()}
        tmp = self.status_file.with_name(self.status_file.name + ".tmp")
        with contextlib.suppress(OSError):  # the parent may have gone; never crash for it
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, self.status_file)

    async def run(self, stopping: asyncio.Event) -> None:
        self._write_status()
        tasks = [asyncio.create_task(self._supervise(name, factory, stopping), name=name)
                 for name, factory in self.factories.items()]
        try:
            await stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, worker: str, factory: Callable[[], Runner],
                         stopping: asyncio.Event) -> None:
        import structlog

        # Each task runs in its own copy of the context: its log lines name the worker.
        structlog.contextvars.bind_contextvars(process=worker)
        backoff = self.backoff()
        while not stopping.is_set():
            began = time.monotonic()
            runner: Runner | None = None
            try:
                self._set(worker, "starting")
                runner = factory()
                await runner.start()
                self._set(worker, "running")
                log.info("worker started", worker=worker)
                await runner.run()
                raise RuntimeError("returned without being stopped")
            except asyncio.CancelledError:
                self._set(worker, "stopping")
                await self._stop(worker, runner)
                self._set(worker, "stopped")
                log.info("worker stopped", worker=worker)
                raise
            except Exception as exc:
                await self._stop(worker, runner)
                delay = backoff.next_delay(time.monotonic() - began)
                self.statuses[worker].restarts += 1
                reason = f"{type(exc).__name__}: {exc}"[:200]
                self._set(worker, "crashed", f"{reason}; restart in {delay:.0f} s")
                log.error("worker crashed", worker=worker, error=reason, restart_in=delay,
                          exc_info=exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)

    async def _stop(self, worker: str, runner: Runner | None) -> None:
        if runner is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(runner.stop()), timeout=self.stop_grace)
        except Exception as exc:
            log.warning("worker did not stop cleanly", worker=worker,
                        error=f"{type(exc).__name__}: {exc}"[:200])


def read_status(path: Path) -> dict[str, str]:
    """A group's last reported worker states; empty while it has reported none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def preload(workers: Iterable[Worker]) -> None:
    """Import every worker's code now (seconds of CPU), so that it overlaps the
    infrastructure's start-up under `propstream up` instead of following it."""
    from kernel.manifest import Lazy, ProjectionFactory

    for worker in workers:
        factory: Any = worker.factory
        if isinstance(factory, ProjectionFactory):
            import kernel.projection  # noqa: F401  (what the factory builds on)

            factory = factory.make
        if isinstance(factory, Lazy):
            factory.resolve()


def members(group: Group, without: Iterable[str] = ()) -> tuple[Worker, ...]:
    """The group's workers but those named in `without` (each must be one of them)."""
    left_out = set(without)
    unknown = left_out - {w.process for w in group.workers}
    if unknown:
        raise SystemExit(f"{group.name} has no worker {', '.join(sorted(unknown))}; its "
                         f"workers: {', '.join(w.process for w in group.workers)}")
    return tuple(w for w in group.workers if w.process not in left_out)


def run_group(settings: Any, name: str, *, without: Iterable[str] = ()) -> None:
    """`propstream run group <name>`: the service's workers in this process until signalled,
    but those named in `without` (run elsewhere, e.g. one a test restarts on its own)."""
    import signal

    from kernel.exceptions import PropstreamError
    from kernel.observability import configure_logging
    from kernel.runtime import settle_heap
    from propstream.gate import wait_at_gate
    from propstream.manifests import SERVICES
    from propstream.processes import _run, _service_settings, serve_metrics

    known = groups(SERVICES)
    if name not in known:
        raise SystemExit(f"unknown group {name!r}; known: {', '.join(known)}")
    group = known[name]
    workers = members(group, without)
    settings = _service_settings(settings, group.service)
    configure_logging(settings, process=name)
    serve_metrics(settings)
    status_file = os.environ.get(STATUS_FILE_ENV)

    def builder(worker: Worker) -> Callable[[], Runner]:
        def build() -> Runner:
            try:
                runner: Runner = worker.factory(settings)
            except PropstreamError as exc:
                raise RuntimeError(f"{worker.process}: {exc}") from None
            return runner
        return build

    runner = GroupRunner(name, {w.process: builder(w) for w in workers},
                         status_file=Path(status_file) if status_file else None)
    preload(workers)
    wait_at_gate()  # under `propstream up`: until the infrastructure is up

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        settle_heap()
        log.info("group started", name=name, workers=len(workers))
        await runner.run(stopping)
        log.info("group stopped", name=name)

    _run(main())
