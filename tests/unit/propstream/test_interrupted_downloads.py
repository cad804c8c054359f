"""An interrupted or failed download never leaves a folder that looks complete."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel.exceptions import InfraError
from kernel.infra.kafka import fetch_jars

FAKE_MVN = """#!/bin/bash
# Writes one jar where it is told, then fails or succeeds as $FAKE_MVN_EXIT says.
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
echo partial > "$out/kafka.jar"
[ "$FAKE_MVN_EXIT" = 0 ] || { echo "[ERROR] connection reset"; exit 1; }
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    mvn = bindir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_a_failed_download_is_not_taken_for_a_finished_one(
        tmp_path: Path, fake_mvn: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    dest = tmp_path / "libs"
    monkeypatch.setenv("FAKE_MVN_EXIT", "1")
    with pytest.raises(InfraError, match="connection reset"):
        fetch_jars(pom, dest, what="Kafka")
    assert not dest.exists()  # the half-written jar stayed in libs.partial
    monkeypatch.setenv("FAKE_MVN_EXIT", "0")
    assert fetch_jars(pom, dest, what="Kafka") == 1
    assert (dest / ".complete").read_text() == "<project/>"
    assert not (tmp_path / "libs.partial").exists()
    monkeypatch.setenv("FAKE_MVN_EXIT", "1")  # complete: Maven is not asked again
    assert fetch_jars(pom, dest, what="Kafka") == 1
