"""The start-up gate: `propstream up` starts its children while the infrastructure boots.

Each child imports its code and builds what needs no IO, then waits at the gate until `up`
opens it (infrastructure up, topics applied): the children's imports, seconds of CPU each,
overlap Kafka's JVM start instead of following it. A child whose `up` is gone stops waiting.
Without PROPSTREAM_START_GATE (Kubernetes, `propstream run` by hand) there is no gate.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

GATE_ENV = "PROPSTREAM_START_GATE"


def wait_at_gate(poll: float = 0.05) -> None:
    """Return once the gate file named by PROPSTREAM_START_GATE exists (at once if unset)."""
    path = os.environ.get(GATE_ENV)
    if not path:
        return
    gate, parent = Path(path), os.getppid()
    while not gate.exists():
        if os.getppid() != parent:
            raise SystemExit("propstream up is gone before opening the start gate; not starting")
        time.sleep(poll)
