"""One frozen Settings object, read from `PROPSTREAM_*` variables at start-up and passed in."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Literal, TypeVar, overload

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
# The API key stripe-mock accepts, and a webhook secret only good for development and tests.
STRIPE_MOCK_KEY = "sk_test_123"
DEV_WEBHOOK_SECRET = "whsec_dev_only_not_a_secret"
DEV_SECRET_KEY = "dev-only-not-a-secret"
DEV_DATA_KEY_SECRET = "dev-only-data-key-secret"
# Environments where a developer's loopback-only platform may run on the public defaults.
DEVELOPER_ENVS = frozenset({"dev", "test"})
STRIPE_API_BASE = "https://api.stripe.com"


class KernelSettings(BaseSettings):
    """What the kernel needs: environment, infrastructure, logs, metrics, the HTTP and stream
    runtime. Each service extends it (`core.config.CoreSettings`,
    `market_data.config.MarketSettings`); variable names are `PROPSTREAM_<FIELD>` throughout."""

    model_config = SettingsConfigDict(env_prefix="PROPSTREAM_", frozen=True, extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    namespace: str = Field(
        default="",
        pattern=r"^([a-z][a-z0-9-]{0,30})?$",
        description="prefix of topic names and name of the PostgreSQL schema; empty = none",
    )
    host: str = "127.0.0.1"

    # Local infrastructure started by `propstream infra up`.
    cache_dir: Path = ROOT / ".cache"
    kafka_port: int = Field(default=19092, ge=1024, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1024, le=65535)
    kafka_replication_factor: int = Field(default=1, ge=1, le=7)
    kafka_heap_mb: int = Field(default=512, ge=128, le=8192)
    pg_port: int = Field(default=15432, ge=1024, le=65535)
    redis_port: int = Field(default=16379, ge=1024, le=65535)
    stripe_mock_port: int = Field(default=12111, ge=1024, le=65535,
                                  description="port of the local stripe-mock (payments)")

    # External endpoints (Kubernetes); when unset the local ones above are used.
    kafka_bootstrap: str | None = None
    pg_dsn: SecretStr | None = None
    redis_url: SecretStr | None = None
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="serve /metrics on this port (every process; an API then stops serving "
                    "/metrics on its public port)")
    metrics_host: str | None = Field(
        default=None, description="address the metrics port binds to; none = PROPSTREAM_HOST")
    command_timeout_ms: int = Field(default=5000, ge=50, le=60000)
    cors_origins: tuple[str, ...] = ("http://localhost:5173",)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    idempotency_ttl_s: int = Field(
        default=24 * 3600, ge=60, le=7 * 24 * 3600,
        description="how long a POST's Idempotency-Key and its stored response are kept")
    idempotency_lock_ttl_s: int = Field(
        default=60, ge=1, le=600,
        description="how long a request in progress holds its key; outlive a request")
    rate_limit_per_s: float = Field(
        default=20.0, gt=0, le=100_000,
        description="tokens per second of the default bucket, per caller and per IP")
    rate_limit_burst: int = Field(default=40, ge=1, le=1_000_000,
                                  description="capacity of the default bucket")
    decider_snapshot_every: int = Field(default=10_000, ge=1, le=10_000_000)
    stream_session_timeout_ms: int = Field(
        default=10_000, ge=1000, le=300_000,
        description="consumer-group session timeout of deciders, policies and processors: how "
                    "long a silent member keeps its partitions")
    projection_batch: int = Field(default=5000, ge=1, le=100_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # Unknown API keys cost a database query: a per-IP bucket of failed lookups (per process).
    api_key_miss_rate_per_s: float = Field(default=1.0, gt=0, le=100_000)
    api_key_miss_burst: int = Field(default=20, ge=1, le=1_000_000)
    # In-memory caches bounded by bytes, not by count.
    command_reply_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=2**34)
    # Reads that reach PostgreSQL a page at a time (core's lists, market bars and UDF history),
    # per caller and IP, and UDF quotes (up to 20 symbols, three reads each) on a bucket of
    # their own.
    read_rate_per_s: float = Field(default=20.0, gt=0, le=100_000)
    read_burst: int = Field(default=100, ge=1, le=1_000_000)
    decider_outcome_bytes_per_partition: int = Field(default=16 * 1024 * 1024, ge=0,
                                                     le=2**34)

    @model_validator(mode="after")
    def _no_public_secret_outside_a_developers_loopback(self) -> KernelSettings:
        # The defaults are in the source: anyone can sign tokens or webhooks with them. They
        # are only tolerable where nobody but the developer can reach the platform.
        public = [name for name, (value, default) in self.public_defaults().items()
                  if value.get_secret_value() == default]
        if public and not self.developer_loopback:
            names = ", ".join(public)
            raise ValueError(
                f"{names} {'is' if len(public) == 1 else 'are'} the public development "
                f"default; set your own (a secret store, never a value in the source), or run "
                f"with PROPSTREAM_ENV=dev or test and every bind address on loopback "
                f"(PROPSTREAM_HOST={self.host!r}, PROPSTREAM_ENV={self.env!r})")
        ports = [self.kafka_port, self.kafka_controller_port, self.pg_port, self.redis_port,
                 self.stripe_mock_port]
        if len(set(ports)) != len(ports):
            raise ValueError("Kafka, Kafka controller, PostgreSQL, Redis and stripe-mock ports "
                             "must differ")
        if self.idempotency_lock_ttl_s * 1000 <= self.command_timeout_ms:
            raise ValueError("PROPSTREAM_IDEMPOTENCY_LOCK_TTL_S must outlast "
                             "PROPSTREAM_COMMAND_TIMEOUT_MS, or a retry runs a request twice")
        return self

    @property
    def bind_addresses(self) -> tuple[str, ...]:
        """Every address a process of this platform listens on."""
        return (self.host,) if self.metrics_host is None else (self.host, self.metrics_host)

    @property
    def developer_loopback(self) -> bool:
        """A developer's platform: `dev` or `test`, reachable from this machine only."""
        return self.env in DEVELOPER_ENVS and all(is_loopback(a) for a in self.bind_addresses)

    @property
    def metrics_bind(self) -> str:
        return self.metrics_host or self.host

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        if self.pg_dsn is not None:
            return self.pg_dsn.get_secret_value()
        return f"postgresql://propstream@{self.host}:{self.pg_port}/propstream"

    @property
    def cache_url(self) -> str:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def pg_schema(self) -> str:
        return self.namespace.replace("-", "_") or "public"

    def public_defaults(self) -> dict[str, tuple[SecretStr, str]]:
        """Secret variable -> (its value, the development default published in the source);
        a service adds its own secrets."""
        return {"PROPSTREAM_SECRET_KEY": (self.secret_key, DEV_SECRET_KEY)}

    def topic(self, name: str) -> str:
        """Return the physical name of catalogue topic `name` in this namespace."""
        return f"{self.namespace}.{name}" if self.namespace else name


# The kernel's modules take the kernel's settings; a service passes its own subclass.
Settings = KernelSettings


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; anything else (0.0.0.0, ::, a name) may be public."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def default_secrets(settings: KernelSettings) -> list[str]:
    """The variables of `settings` still holding a default published in this source."""
    return [name for name, (value, default) in settings.public_defaults().items()
            if value.get_secret_value() == default]


S = TypeVar("S", bound=KernelSettings)


@overload
def load_settings(**overrides: object) -> KernelSettings: ...


@overload
def load_settings(cls: type[S], **overrides: object) -> S: ...


def load_settings(cls: type[KernelSettings] = KernelSettings,  # type: ignore[misc]
                  **overrides: object) -> KernelSettings:
    """Build `cls` (a service's settings class; the kernel's by default) from the
    environment, or stop the process naming the bad variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if field:
                lines.append(f"invalid setting PROPSTREAM_{field.upper()}: {err['msg']}")
            else:  # a rule across settings: its message names the variables
                lines.append(f"invalid settings: {err['msg'].removeprefix('Value error, ')}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
