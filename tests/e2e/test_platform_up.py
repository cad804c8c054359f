"""`propstream up` (what `make run` calls): the whole platform, seeded, then a clean stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from kernel.settings import Settings
from propstream.groups import laptop_processes
from propstream.manifests import SERVICES
from tests.conftest import process_env

pytestmark = pytest.mark.integration


def free_port_block(size: int) -> int:
    """A base port with `size` free ports above it (API port, then +100 … for metrics)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 100 + size > 65000:
            continue
        ports = [base] + [base + 100 + i for i in range(size)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free block of ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_up_serves_seeded_instruments_and_stops_cleanly(base_settings: Settings) -> None:
    api_port = free_port_block(2)
    settings = base_settings.model_copy(update={"namespace": "e" + uuid.uuid4().hex[:10]})
    market_port = _free_port()
    env = process_env(settings) | {"PROPSTREAM_API_PORT": str(api_port),
                                   "PROPSTREAM_MARKET_API_PORT": str(market_port),
                                   "PROPSTREAM_LOG_LEVEL": "WARNING",
                                   "PROPSTREAM_SEED_ADMIN_PASSWORD": "e2e admin password 1",
                                   "PROPSTREAM_SEED_TRADER_PASSWORD": "e2e trader password 1"}
    proc = subprocess.Popen([sys.executable, "-m", "propstream", "up"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "propstream is up" in line:
                break
        assert any("propstream is up" in line for line in output), "".join(output)
        assert any("seeded 10 new instrument(s)" in line for line in output), "".join(output)

        base = f"http://127.0.0.1:{api_port}"
        page = httpx.get(f"{base}/instruments", params={"limit": 500}, timeout=10)
        deadline = time.monotonic() + 30
        while len(page.json().get("items", [])) < 10 and time.monotonic() < deadline:
            time.sleep(0.3)
            page = httpx.get(f"{base}/instruments", params={"limit": 500}, timeout=10)
        items = page.json()["items"]
        assert {i["asset_class"] for i in items} == {"crypto", "fx", "index", "prediction"}
        assert len(items) == 10
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        assert any("seeded 3 new tier(s)" in line for line in output), "".join(output)
        tiers = httpx.get(f"{base}/tiers", timeout=10).json()["items"]
        deadline = time.monotonic() + 30
        while len(tiers) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
            tiers = httpx.get(f"{base}/tiers", timeout=10).json()["items"]
        assert [t["tier_id"] for t in tiers] == ["pro-100k", "standard-50k", "starter-10k"]
        # The offline demo: the seeded trader logs in and finds the granted assessment and its
        # funded account, with no card and no network.
        # Seeding returns once the user decider decided; the users read model follows.
        deadline = time.monotonic() + 60
        while True:
            login = httpx.post(f"{base}/auth/login", timeout=10, json={
                "email": "trader@propstream.dev", "password": "e2e trader password 1"})
            if login.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert login.status_code == 200, login.text
        trader = {"Authorization": f"Bearer {login.json()['access_token']}"}
        # Five consumers in a row (policy, two deciders, policy, projection), all joining for
        # the first time on a broker that just started, on 2 busy cores: allow for it.
        accounts: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while not accounts and time.monotonic() < deadline:
            time.sleep(0.3)
            accounts = httpx.get(f"{base}/accounts", headers=trader, timeout=10).json()["items"]
        assert [(a["starting_balance"], a["currency"], a["status"]) for a in accounts] == [
            ("10000", "USD", "open")], accounts
        assessments = httpx.get(f"{base}/assessments", headers=trader, timeout=10).json()
        assert [(a["tier_id"], a["source"], a["status"]) for a in assessments["items"]] == [
            ("starter-10k", "grant", "active")]
        for port in (api_port + 100, api_port + 101):
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert "propstream_messages_total" in metrics

        # The simulator's prices move, as `make run` shows at GET /market/prices.
        market = f"http://127.0.0.1:{market_port}/market/prices"

        def prices() -> dict[str, float]:
            response = httpx.get(market, timeout=10)
            assert response.status_code == 200, response.text
            return {p["instrument"]: p["price"] for p in response.json()}

        deadline = time.monotonic() + 60
        first = prices()
        while len(first) < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
            first = prices()
        assert len(first) == 10, first
        time.sleep(2)
        later = prices()
        assert any(later[s] != first[s] for s in first), "no price moved in 2 s"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        output.append(rest or "")
    assert proc.returncode == 0, "".join(output)[-3000:]
    text = "".join(output)
    # The laptop layout: each API, and one process per service for its workers.
    for name in laptop_processes(SERVICES):
        assert f"{name} stopped" in text


def test_up_on_its_own_infrastructure_stops_it_on_ctrl_c(tmp_path: Path) -> None:
    """As `make run` on a machine where nothing runs yet: Ctrl-C leaves nothing behind."""
    base = free_port_block(2)
    ports = {"PROPSTREAM_KAFKA_PORT": _free_port(), "PROPSTREAM_KAFKA_CONTROLLER_PORT":
             _free_port(), "PROPSTREAM_PG_PORT": _free_port(), "PROPSTREAM_REDIS_PORT":
             _free_port(), "PROPSTREAM_STRIPE_MOCK_PORT": _free_port()}
    env = dict(os.environ) | {k: str(v) for k, v in ports.items()} | {
        "PROPSTREAM_CACHE_DIR": str(tmp_path / "cache"), "PROPSTREAM_API_PORT": str(base),
        "PROPSTREAM_MARKET_API_PORT": str(_free_port()),
        "PROPSTREAM_LOG_LEVEL": "WARNING", "PROPSTREAM_ENV": "test",
    }
    proc = subprocess.Popen([sys.executable, "-m", "propstream", "up", "--no-seed"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops" in line:
                break
        text = "".join(output)
        assert "Ctrl-C stops the services and postgres, redis, kafka, stripe-mock." in text, text
        assert httpx.get(f"http://127.0.0.1:{base}/readyz", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    text = "".join(output) + (rest or "")
    assert proc.returncode == 0, text[-3000:]
    for name in ("kafka", "redis", "postgres", "stripe-mock"):
        assert re.search(rf"{name}\s+stopped", text), text[-2000:]
    for port in ports.values():
        assert _free(port), f"port {port} still answers after Ctrl-C"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
