"""A local stripe-mock on its own port: the Stripe API for tests and `make run`, no network.

Built from its Go module by scripts/install-stripe-mock.sh. Without Go it is reported as
unavailable instead of failing `infra up`: Kafka, PostgreSQL and Redis still start, and only
what talks to Stripe fails (loudly: the purchase tests expect a real Checkout Session).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kernel.exceptions import InfraError
from kernel.infra.procs import PidfileServer, ensure_port_free, run_tool, running
from kernel.settings import ROOT, Settings

INSTALL_SCRIPT = ROOT / "scripts" / "install-stripe-mock.sh"
UNAVAILABLE = "unavailable"


class StripeMockServer(PidfileServer):
    name = "stripe-mock"
    grace = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pidfile = settings.cache_dir / "run" / "stripe-mock.pid"
        self.log = settings.cache_dir / "stripe-mock" / "stripe-mock.log"

    @property
    def port(self) -> int:
        return self.settings.stripe_mock_port

    def binary(self) -> Path | None:
        """The installed binary (building it once), or None when Go is missing."""
        built = self.settings.cache_dir / "bin" / "stripe-mock"
        if shutil.which("go") is None:
            return built if built.exists() else None
        env = {**os.environ, "PROPSTREAM_CACHE_DIR": str(self.settings.cache_dir)}
        result = run_tool(["bash", str(INSTALL_SCRIPT)], env=env)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InfraError(f"building stripe-mock failed: {tail[0]}")
        return Path(result.stdout.strip().splitlines()[-1])

    def up(self) -> str:
        pid = running(self.pidfile)
        if pid is not None:
            return f"already running (pid {pid})"
        binary = self.binary()
        if binary is None:
            return (f"{UNAVAILABLE}: go is not on PATH, so stripe-mock cannot be built; "
                    "purchases will fail until Go (>= 1.22) is installed")
        ensure_port_free(self.settings.host, self.port, what="stripe-mock",
                         variable="PROPSTREAM_STRIPE_MOCK_PORT")
        # HTTPS on an ephemeral loopback port: left implicit, stripe-mock also binds :12112 on
        # every interface, so a second instance (another checkout, CI) could not start.
        argv = [str(binary), "-http-addr", f"{self.settings.host}:{self.port}",
                "-https-addr", f"{self.settings.host}:0"]
        return self.launch(argv, host=self.settings.host, what="stripe-mock")
