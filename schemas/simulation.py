"""Monte Carlo simulations of an account: what a run reports while it runs and when it ends.

Keyed by the account id the run simulates, so one account's runs are ordered in one
partition, beside its `account.events` (same partition count), and the WebSocket gateway
delivers them on the owner's private `simulation:<account id>` channel.

The Monte Carlo service (`monte_carlo/`) writes these events; what requests a run (its
commands, its parameters) is that service's to add. The progress and outcome events are
fixed here first because the gateway delivers them (issue 13: simulation progress).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.envelope import EventPayload
from schemas.family import FOREVER, Family, TopicSpec, dead_letters

SimulationKind = Literal["risk", "drawdown", "pnl", "strategy"]
Paths = Annotated[int, Field(ge=1, le=100_000_000)]
# Summary figures are named numbers (probability of passing, equity percentiles, ...): at
# most 64 of them, finite, so a client can print any run's summary without knowing its kind.
FigureName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")]
Summary = Annotated[dict[FigureName, Annotated[float, Field(allow_inf_nan=False)]],
                    Field(max_length=64)]


class SimulationStarted(EventPayload):
    TYPE = "simulation.started"

    run_id: uuid.UUID
    account_id: uuid.UUID
    kind: SimulationKind
    paths: Paths
    horizon_days: Annotated[int, Field(ge=1, le=3650)]


class SimulationProgressed(EventPayload):
    """`paths_done` of `paths_total` simulated; written at most a few times a second."""

    TYPE = "simulation.progressed"

    run_id: uuid.UUID
    account_id: uuid.UUID
    paths_done: Annotated[int, Field(ge=0, le=100_000_000)]
    paths_total: Paths

    @model_validator(mode="after")
    def _within(self) -> SimulationProgressed:
        if self.paths_done > self.paths_total:
            raise ValueError(f"paths_done {self.paths_done} exceeds paths_total "
                             f"{self.paths_total}")
        return self


class SimulationCompleted(EventPayload):
    TYPE = "simulation.completed"

    run_id: uuid.UUID
    account_id: uuid.UUID
    paths: Paths
    summary: Summary


class SimulationFailed(EventPayload):
    TYPE = "simulation.failed"

    run_id: uuid.UUID
    account_id: uuid.UUID
    reason: Annotated[str, Field(min_length=1, max_length=500)]


EVENTS = (SimulationStarted, SimulationProgressed, SimulationCompleted, SimulationFailed)

# Events only, for now: no decider, so no commands or snapshots topic until the Monte Carlo
# service decides runs; the topic is then the `events` one of `aggregate_topics("simulation")`.
FAMILY = Family(name="simulation", commands=(), events=EVENTS, topics=(
    TopicSpec(name="simulation.events", kind="events", partitions=3,
              key="account id (the simulated account; a run's events stay in order)",
              retention_ms=FOREVER, carries=tuple(e.TYPE for e in EVENTS),
              dead_letter="simulation.events.dlq",
              description="Monte Carlo runs of an account: started, progress, outcome"),
    dead_letters("simulation.events", "simulation events a consumer could not decode or apply"),
))
