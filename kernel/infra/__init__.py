"""Local infrastructure: Kafka, PostgreSQL, Redis and stripe-mock as processes the project
starts itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from kernel.infra.kafka import KafkaServer
from kernel.infra.postgres import PostgresServer
from kernel.infra.redis import RedisServer
from kernel.infra.stripe_mock import UNAVAILABLE, StripeMockServer
from kernel.settings import Settings


class Component(Protocol):
    name: str

    def up(self) -> str: ...

    def down(self, grace: float | None = None) -> str: ...

    def status(self) -> str: ...


def components(settings: Settings) -> list[Component]:
    return [PostgresServer(settings), RedisServer(settings), KafkaServer(settings),
            StripeMockServer(settings)]


def up(settings: Settings, say: Callable[[str], None]) -> tuple[float, list[str]]:
    """Start whatever is not running; return the seconds it took and what this call started.

    A failure or an interruption (Ctrl-C) at any point stops what this call started, the
    component it was starting included, and leaves what ran before running."""
    began = time.monotonic()
    started: list[str] = []
    starting: str | None = None
    launched: list[str] = []
    parts = components(settings)
    try:
        # A component that can be launched without waiting (Kafka: a JVM that boots for
        # seconds) is launched first, and the others start while it boots.
        for component in parts:
            launch = getattr(component, "launch_early", None)
            if launch is not None and not component.status().startswith("running"):
                say(f"{component.name:<9} launching …")
                launched.append(component.name)  # an interruption from here on stops it
                launch()
        for component in parts:
            t0 = time.monotonic()
            say(f"{component.name:<9} starting …")
            if not component.status().startswith("running"):
                starting = component.name
            result = component.up()
            if not result.startswith(("already running", UNAVAILABLE)):
                started.append(component.name)
            starting = None
            say(f"{component.name:<9} {result} [{time.monotonic() - t0:.1f} s]")
    except BaseException as exc:
        # A failed start-up leaves nothing behind: what this call started, it stops.
        stop = started + [name for name in (starting, *launched)
                          if name is not None and name not in started]
        if stop:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "start-up failed"
            say(f"{why}; stopping what it started: {', '.join(stop)}")
            down(settings, say, only=stop, grace=4.0)
        raise
    return time.monotonic() - began, started


def down(settings: Settings, say: Callable[[str], None], *,
         only: list[str] | None = None, grace: float | None = None) -> None:
    """Stop the components (all, or `only` these) by their pid files, all at once: SIGTERM,
    then SIGKILL after `grace` seconds (each component's own grace when None)."""
    from concurrent.futures import ThreadPoolExecutor

    chosen = [c for c in reversed(components(settings)) if only is None or c.name in only]
    if not chosen:
        return
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        results = list(pool.map(lambda c: c.down(grace), chosen))
    for component, result in zip(chosen, results, strict=True):
        say(f"{component.name:<9} {result}")


def status(settings: Settings) -> dict[str, str]:
    return {c.name: c.status() for c in components(settings)}
