"""Structured JSON logs (structlog) and Prometheus metrics shared by every process."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from kernel.settings import Settings

MESSAGES = Counter(
    "propstream_messages_total", "Messages handled by a processor",
    ["processor", "topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "propstream_dead_letters_total", "Messages sent to a dead-letter topic",
    ["processor", "topic", "reason"],
)
CONSUMER_LAG = Gauge(
    "propstream_consumer_lag", "Records between a consumer's position and the high watermark",
    ["group", "topic", "partition"],
)
BATCH_SECONDS = Histogram(
    "propstream_batch_seconds", "Time to process one consumed batch", ["processor"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
COMMAND_SECONDS = Histogram(
    "propstream_command_round_trip_seconds", "API: command sent until its decided reply",
    ["command"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5),
)


def configure_logging(settings: Settings, *, process: str) -> None:
    """Send structlog and stdlib logs as one JSON object per line (or readable in a console)."""
    level = getattr(logging, settings.log_level)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka reports every retried connection at ERROR; our own logs say what matters.
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))
    structlog.contextvars.bind_contextvars(process=process)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
