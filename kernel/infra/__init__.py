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

    def down(self) -> str: ...

    def status(self) -> str: ...


def components(settings: Settings) -> list[Component]:
    return [PostgresServer(settings), RedisServer(settings), KafkaServer(settings),
            StripeMockServer(settings)]


def up(settings: Settings, say: Callable[[str], None]) -> tuple[float, list[str]]:
    """Start whatever is not running; return the seconds it took and what this call started."""
    began = time.monotonic()
    started: list[str] = []
    try:
        for component in components(settings):
            t0 = time.monotonic()
            say(f"{component.name:<9} starting …")
            result = component.up()
            if not result.startswith(("already running", UNAVAILABLE)):
                started.append(component.name)
            say(f"{component.name:<9} {result} [{time.monotonic() - t0:.1f} s]")
    except BaseException:
        # A failed start-up leaves nothing behind: what this call started, it stops.
        if started:
            say(f"start-up failed; stopping what it started: {', '.join(started)}")
            down(settings, say, only=started)
        raise
    return time.monotonic() - began, started


def down(settings: Settings, say: Callable[[str], None], *,
         only: list[str] | None = None) -> None:
    """Stop the components (all, or `only` these) by their pid files."""
    for component in reversed(components(settings)):
        if only is None or component.name in only:
            say(f"{component.name:<9} {component.down()}")


def status(settings: Settings) -> dict[str, str]:
    return {c.name: c.status() for c in components(settings)}
