"""The runner each worker of a benchmarked parallel rebuild builds (bench/projection_rebuild).

Its own small module: a worker unpickles the factory by importing this, and the benchmark's
module would bring the tape generator and the test helpers along (seconds per worker)."""

from __future__ import annotations

from core.adapters.instruments_projection import InstrumentsProjection
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from schemas import default_registry


def make_runner(settings: Settings, max_batch: int) -> ProjectionRunner:
    return ProjectionRunner(settings, InstrumentsProjection(), default_registry(),
                            max_batch=max_batch)
