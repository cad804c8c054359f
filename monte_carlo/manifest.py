"""The Monte Carlo service, declared once. Today it owns the `simulation` family's contract
(the events a run writes, which the WebSocket gateway delivers); its processes (requests,
Ray workers) come with the Monte Carlo work and are added here."""

from __future__ import annotations

from kernel.manifest import ServiceManifest
from kernel.settings import KernelSettings
from schemas import simulation

MANIFEST = ServiceManifest(name="monte_carlo", settings=KernelSettings,
                           families=(simulation.FAMILY,))
