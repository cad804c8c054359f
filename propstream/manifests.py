"""Every service of the platform, and the views derived from their manifests."""

from __future__ import annotations

from core.manifest import MANIFEST as CORE
from kernel.manifest import ServiceManifest, Worker, WorkerKind, find_worker, processes
from market_data.manifest import MANIFEST as MARKET_DATA
from monte_carlo.manifest import MANIFEST as MONTE_CARLO
from ws_gateway.manifest import MANIFEST as WS_GATEWAY

SERVICES: tuple[ServiceManifest, ...] = (CORE, MARKET_DATA, WS_GATEWAY, MONTE_CARLO)


def platform() -> dict[str, tuple[str, ...]]:
    """Process name -> argv after `propstream run`: what `propstream up` starts."""
    return processes(SERVICES)


def workers() -> tuple[Worker, ...]:
    return tuple(w for service in SERVICES for w in service.workers())


def worker(kind: WorkerKind, name: str) -> Worker:
    """The worker of `propstream run <kind> <name>`; KeyError names the known ones."""
    return find_worker(SERVICES, kind, name)


def service(name: str) -> ServiceManifest:
    for manifest in SERVICES:
        if manifest.name == name:
            return manifest
    raise KeyError(name)
