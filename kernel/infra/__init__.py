"""Local infrastructure: Kafka, PostgreSQL and Redis as processes the project starts itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from kernel.infra.kafka import KafkaServer
from kernel.infra.postgres import PostgresServer
from kernel.infra.redis import RedisServer
from kernel.settings import Settings


class Component(Protocol):
    name: str

    def up(self) -> str: ...

    def down(self) -> str: ...

    def status(self) -> str: ...


def components(settings: Settings) -> list[Component]:
    return [PostgresServer(settings), RedisServer(settings), KafkaServer(settings)]


def up(settings: Settings, say: Callable[[str], None]) -> float:
    """Start whatever is not running; return the seconds it took."""
    started = time.monotonic()
    for component in components(settings):
        t0 = time.monotonic()
        say(f"{component.name:<9} starting …")
        result = component.up()
        say(f"{component.name:<9} {result} [{time.monotonic() - t0:.1f} s]")
    return time.monotonic() - started


def down(settings: Settings, say: Callable[[str], None]) -> None:
    for component in reversed(components(settings)):
        say(f"{component.name:<9} {component.down()}")


def status(settings: Settings) -> dict[str, str]:
    return {c.name: c.status() for c in components(settings)}
