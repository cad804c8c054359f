"""Shared helpers of the benchmarks: settings in a fresh namespace, topics, medians, tables."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterable, Sequence

from kernel.kafka import apply_topics, delete_namespace_topics
from kernel.settings import load_settings
from propstream.settings import PlatformSettings as Settings
from schemas.topics import CATALOGUE, TopicSpec

# Rate limits of the spawned services raised through their settings' variables, so a benchmark
# measures the service, not the limiter (one user at 50 req/s is far over the default bucket).
UNLIMITED = {"PROPSTREAM_LOGIN_RATE_PER_S": "100000", "PROPSTREAM_LOGIN_BURST": "1000000",
             "PROPSTREAM_REGISTER_RATE_PER_S": "100000", "PROPSTREAM_REGISTER_BURST": "1000000",
             "PROPSTREAM_RATE_LIMIT_PER_S": "100000", "PROPSTREAM_RATE_LIMIT_BURST": "1000000"}


def base_settings() -> Settings:
    """Settings from the environment (PROPSTREAM_*), as every propstream process reads them."""
    return load_settings(Settings)


def fresh_namespace(settings: Settings, prefix: str) -> Settings:
    """A namespace of our own: own topics, own PostgreSQL schema."""
    return settings.model_copy(update={"namespace": f"{prefix}{uuid.uuid4().hex[:8]}"})


def spec_of(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(name)


async def create_topics(settings: Settings, specs: Iterable[TopicSpec]) -> None:
    await apply_topics(settings, list(specs))


async def delete_namespace(settings: Settings) -> None:
    """Delete every topic of the namespace (benchmark data only; never an empty namespace)."""
    await delete_namespace_topics(settings)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in body]
    return "\n".join(out)


async def drop_pg_schema(settings: Settings) -> None:
    """Drop the namespace's PostgreSQL schema (benchmark data only)."""
    import psycopg
    from psycopg import sql

    assert settings.namespace, "refusing to drop the public schema"
    async with await psycopg.AsyncConnection.connect(settings.database_url,
                                                     autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(settings.pg_schema)))
