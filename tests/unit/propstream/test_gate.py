"""The start gate: a child of `up` imports, then waits until the infrastructure is up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from propstream.gate import GATE_ENV, wait_at_gate


def test_without_a_gate_a_process_starts_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GATE_ENV, raising=False)
    began = time.monotonic()
    wait_at_gate()
    assert time.monotonic() - began < 0.05


def test_a_child_waits_until_up_opens_the_gate(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_ENV, str(gate))
    opened = threading.Timer(0.3, gate.touch)
    opened.start()
    began = time.monotonic()
    wait_at_gate(poll=0.01)
    assert 0.25 < time.monotonic() - began < 2
    opened.join()
