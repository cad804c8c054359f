"""Process-wide tuning of the CPython runtime for long-running stream processes."""

from __future__ import annotations

import gc

# Young collections every 100k net container allocations instead of 700: a batch of a few
# thousand decoded events comes and goes between two of them.
GC_THRESHOLDS = (100_000, 50, 100)


def settle_heap() -> None:
    """Call once a process has started: imports done, schemas built, clients connected.

    CPython's cyclic collector walks every tracked container of the generations it collects.
    A stream process allocates tens of thousands of short-lived dicts per batch (decoded
    envelopes and payloads); with the default thresholds (700, 10, 10) the collector ran every
    few dozen events, promoted the batch in flight, and walked the start-up heap (modules,
    pydantic validators) again and again: about half of a projection rebuild's decode time
    (bench/projection_rebuild, bench/RESULTS.md). Freezing moves everything alive now into a
    permanent generation the collector skips. Reference counting still frees all acyclic
    garbage at once; only reference cycles wait longer to be collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
