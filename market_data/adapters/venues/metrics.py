"""Prometheus metrics of the venue connectors, labelled by venue."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FRAMES = Counter(
    "propstream_md_frames_total", "Venue frames received", ["venue", "outcome"],
)
REJECTED = Counter(
    "propstream_md_rejected_frames_total", "Venue frames dead-lettered, by reason",
    ["venue", "reason"],
)
DUPLICATES = Counter(
    "propstream_md_duplicate_trades_total", "Trades dropped as already seen", ["venue"],
)
RECONNECTS = Counter(
    "propstream_md_reconnects_total", "Connections lost or closed and retried, by cause",
    ["venue", "cause"],
)
GAPS = Counter(
    "propstream_md_sequence_gaps_total", "Sequence gaps that triggered a resync", ["venue"],
)
BACKOFF_SECONDS = Histogram(
    "propstream_md_backoff_seconds", "Delay before a reconnect attempt", ["venue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
