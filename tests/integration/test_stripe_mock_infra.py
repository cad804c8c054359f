"""stripe-mock as an infra component: up, status, down by pid file; no Go is not fatal."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from kernel import infra
from kernel.infra.procs import port_open
from kernel.infra.stripe_mock import UNAVAILABLE, StripeMockServer
from kernel.settings import Settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_up_status_down_on_a_spare_port(base_settings: Settings, tmp_path: Path) -> None:
    built = base_settings.cache_dir / "bin" / "stripe-mock"
    assert built.exists(), "infra up (base_settings) builds stripe-mock first"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "stripe-mock").symlink_to(built)  # the script accepts it: same version
    settings = base_settings.model_copy(update={"cache_dir": tmp_path,
                                                "stripe_mock_port": free_port()})
    server = StripeMockServer(settings)
    try:
        assert server.up().startswith("started")
        assert server.up().startswith("already running")
        assert server.status().startswith("running")
        answer = httpx.get(f"{settings.stripe_base}/v1/customers", auth=("sk_test_123", ""),
                           timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["object"] == "list"
    finally:
        assert server.down().startswith("stopped")
    assert server.status() == "stopped"


def test_without_go_it_is_unavailable_and_not_started(base_settings: Settings, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no go, no binary in this cache
    settings = base_settings.model_copy(update={"cache_dir": tmp_path,
                                                "stripe_mock_port": free_port()})
    server = StripeMockServer(settings)
    outcome = server.up()
    assert outcome.startswith(UNAVAILABLE) and "go is not on PATH" in outcome
    assert server.status() == "stopped"
    assert not port_open(settings.host, settings.stripe_mock_port)


def test_infra_lists_stripe_mock_last(base_settings: Settings) -> None:
    assert [c.name for c in infra.components(base_settings)][-1] == "stripe-mock"
