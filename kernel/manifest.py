"""What a service is made of, declared once: its families, workers, API and settings class.

The process list (`propstream run …`, `propstream up`), the Helm chart's workers and the
documentation tables are derived from the manifests (`propstream/manifests.py`), so a new
decider, projection or processor is one entry in its service's manifest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from schemas.family import Family

WorkerKind = Literal["decider", "projection", "policy", "market"]


class Runner(Protocol):
    """A long-running worker: started, run until cancelled, stopped."""

    @property
    def name(self) -> str: ...

    def start(self) -> Awaitable[None]: ...

    def run(self) -> Awaitable[Any]: ...

    def stop(self) -> Awaitable[None]: ...


@dataclass(frozen=True, kw_only=True)
class Worker:
    """One worker: `propstream run <kind> <name>`, a Deployment of its own in Kubernetes.

    `factory` builds its runner from the service's settings. A worker with `platform=False`
    (a live venue feed, which needs the network) is runnable but neither started by
    `propstream up` nor deployed by the chart.
    """

    kind: WorkerKind
    name: str
    factory: Callable[[Any], Runner]
    description: str = ""
    platform: bool = True

    @property
    def process(self) -> str:
        """The process name (`instrument-decider`, `projection-bars`, `market-prices`)."""
        if self.kind in ("decider", "policy"):
            return f"{self.name}-{self.kind}"
        return f"{self.kind}-{self.name}"

    @property
    def argv(self) -> tuple[str, ...]:
        """The arguments after `propstream run`."""
        return (self.kind, self.name)


@dataclass(frozen=True, kw_only=True)
class Api:
    """A service's HTTP API: its process name, app factory and the setting naming its port."""

    process: str
    argv: tuple[str, ...]
    factory: Callable[[Any], Any]
    port_setting: str
    description: str = ""

    def port(self, settings: object) -> int:
        port: int = getattr(settings, self.port_setting)
        return port


@dataclass(frozen=True, kw_only=True)
class ServiceManifest:
    """One service: the families it decides or publishes, its workers, API and settings."""

    name: str
    settings: type[Any]
    families: tuple[Family, ...] = ()
    api: Api | None = None
    deciders: tuple[Worker, ...] = ()
    projections: tuple[Worker, ...] = ()
    processors: tuple[Worker, ...] = ()

    def __post_init__(self) -> None:
        for group, kinds in ((self.deciders, ("decider",)), (self.projections, ("projection",)),
                             (self.processors, ("policy", "market"))):
            for worker in group:
                if worker.kind not in kinds:
                    raise ValueError(f"{self.name}: {worker.process} is a {worker.kind}, "
                                     f"listed among {kinds[0]}s")

    def workers(self) -> Iterator[Worker]:
        yield from self.deciders
        yield from self.projections
        yield from self.processors


def processes(services: Iterable[ServiceManifest], *,
              platform_only: bool = True) -> dict[str, tuple[str, ...]]:
    """Process name -> argv after `propstream run`, every service's API first, then its
    workers; the platform's only process list."""
    out: dict[str, tuple[str, ...]] = {}
    for service in services:
        if service.api is not None:
            out[service.api.process] = service.api.argv
        for worker in service.workers():
            if worker.platform or not platform_only:
                if worker.process in out:
                    raise ValueError(f"two processes are named {worker.process!r}")
                out[worker.process] = worker.argv
    return out


def find_worker(services: Iterable[ServiceManifest], kind: WorkerKind, name: str) -> Worker:
    """The worker `propstream run <kind> <name>` starts, or KeyError naming the known ones."""
    known = [w for s in services for w in s.workers() if w.kind == kind]
    for worker in known:
        if worker.name == name:
            return worker
    raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(w.name for w in known)}")


def service_of(services: Iterable[ServiceManifest], worker: Worker) -> ServiceManifest:
    for service in services:
        if worker in tuple(service.workers()):
            return service
    raise KeyError(worker.process)


@dataclass(frozen=True)
class Lazy:
    """`module.attr`, imported when first called: listing processes imports no runtime."""

    module: str
    attr: str

    def resolve(self) -> Callable[..., Any]:
        import importlib

        target: Callable[..., Any] = getattr(importlib.import_module(self.module), self.attr)
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


@dataclass(frozen=True)
class ProjectionFactory:
    """A projection's runner from settings: the kernel runner over the read model `make()`."""

    make: Callable[[], Any]

    def __call__(self, settings: Any) -> Any:
        from kernel.projection import ProjectionRunner
        from schemas import default_registry

        return ProjectionRunner(settings, self.make(), default_registry(),
                                max_batch=settings.projection_batch)


def projection(name: str, make: Callable[[], Any], description: str = "") -> Worker:
    """The worker running read model `make()` (a `kernel.projection.Projection`)."""
    return Worker(kind="projection", name=name, factory=ProjectionFactory(make),
                  description=description)
