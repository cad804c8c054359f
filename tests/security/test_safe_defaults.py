"""The public development secrets never reach a process that listens beyond loopback.

`propstream run api` is started as the image used to start it (PROPSTREAM_HOST=0.0.0.0, no
real secrets, env `dev`): it must stop before it binds, naming the variable to set. Binding is
local and nothing is sent anywhere but to the loopback port the API would have used.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from kernel.settings import Settings
from tests.security.conftest import free_port

OWN = {"PROPSTREAM_SECRET_KEY": "a-secret-from-a-secret-store",
       "PROPSTREAM_STRIPE_WEBHOOK_SECRET": "whsec_from_a_secret_store",
       "PROPSTREAM_STRIPE_API_KEY": "sk_live_from_a_secret_store",
       "PROPSTREAM_DATA_KEY_SECRET": "kek-from-a-secret-store"}
PUBLIC_DEFAULTS = ("dev-only-not-a-secret", "whsec_dev_only_not_a_secret", "sk_test_123",
                   "dev-only-data-key-secret")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run_api(extra: dict[str, str]) -> tuple[int, str, bool]:
    """Start `propstream run api` on a free port; its exit code, stderr, and whether the
    port was ever seen listening while it ran."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPSTREAM_")}
    env |= {"PROPSTREAM_ENV": "dev", "PROPSTREAM_HOST": "0.0.0.0",
            "PROPSTREAM_API_PORT": str(port), **extra}
    proc = subprocess.Popen([sys.executable, "-m", "propstream", "run", "api"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listened = False
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            listened = listened or _listening(port)
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    return proc.returncode, err, listened or _listening(port)


def test_api_on_every_address_with_the_public_dev_secrets_exits_before_it_listens() -> None:
    code, err, listened = _run_api({})
    assert code != 0
    assert not listened
    for name in OWN:
        assert name in err, err
    assert not any(value in err for value in PUBLIC_DEFAULTS)


@pytest.mark.parametrize("left_default", sorted(OWN))
def test_each_public_default_alone_is_refused_by_name(left_default: str) -> None:
    code, err, listened = _run_api({k: v for k, v in OWN.items() if k != left_default})
    assert code != 0
    assert not listened
    assert left_default in err, err
    assert not any(name in err for name in OWN if name != left_default)


def test_with_a_metrics_port_the_api_serves_metrics_there_and_not_on_its_public_port(
        base_settings: Settings) -> None:
    from kernel.kafka import apply_topics
    from schemas.topics import CATALOGUE
    from tests.conftest import _namespaces, process_env

    settings = base_settings.model_copy(update={
        "namespace": "m" + uuid.uuid4().hex[:10], "api_port": free_port()})
    asyncio.run(apply_topics(settings, CATALOGUE))
    _namespaces.append(settings)
    metrics_port = free_port()
    env = process_env(settings) | {"PROPSTREAM_METRICS_PORT": str(metrics_port)}
    proc = subprocess.Popen([sys.executable, "-m", "propstream", "run", "api"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert proc.poll() is None, "the API exited"
            assert time.monotonic() < deadline, "the API never became ready"
            time.sleep(0.2)
        public = httpx.get(f"{base}/metrics", timeout=5)
        assert public.status_code == 404
        assert "/metrics" not in httpx.get(f"{base}/openapi.json", timeout=5).json()["paths"]
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scraped.status_code == 200 and "propstream_" in scraped.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
