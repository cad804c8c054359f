"""Settings split per service over the kernel's: each class has its own fields, the
variable names stay `PROPSTREAM_<FIELD>`, and each process builds its service's class."""

from __future__ import annotations

import pytest

from core.config import CoreSettings
from kernel.manifest import ServiceManifest
from kernel.settings import KernelSettings
from market_data.config import MarketSettings
from propstream.processes import _service_settings
from propstream.settings import PlatformSettings
from ws_gateway.config import GatewaySettings

KERNEL_ONLY = {"env", "namespace", "host", "kafka_port", "pg_port", "redis_port", "log_level",
               "metrics_port", "secret_key"}


def test_a_core_field_is_not_on_the_market_settings_and_the_reverse() -> None:
    assert "stripe_api_key" in CoreSettings.model_fields
    assert "stripe_api_key" not in MarketSettings.model_fields
    assert "stripe_api_key" not in KernelSettings.model_fields
    assert "simulator_seed" in MarketSettings.model_fields
    assert "simulator_seed" not in CoreSettings.model_fields
    assert set(KernelSettings.model_fields) >= KERNEL_ONLY


def test_the_platform_settings_are_the_union_of_the_services() -> None:
    assert set(PlatformSettings.model_fields) == (
        set(CoreSettings.model_fields) | set(MarketSettings.model_fields)
        | set(GatewaySettings.model_fields))


def test_variable_names_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPSTREAM_SIMULATOR_SEED", "7")
    monkeypatch.setenv("PROPSTREAM_ACCESS_TOKEN_TTL_S", "60")
    monkeypatch.setenv("PROPSTREAM_NAMESPACE", "ns-x")
    assert MarketSettings().simulator_seed == 7
    assert CoreSettings().access_token_ttl_s == 60
    assert (CoreSettings().namespace, MarketSettings().namespace) == ("ns-x", "ns-x")


def test_the_market_settings_do_not_refuse_core_secrets_they_do_not_hold() -> None:
    market = MarketSettings(env="prod", host="10.0.0.1", secret_key="from-a-store")
    assert market.public_defaults().keys() == {"PROPSTREAM_SECRET_KEY"}
    with pytest.raises(ValueError, match="PROPSTREAM_STRIPE_API_KEY"):
        CoreSettings(env="prod", host="10.0.0.1", secret_key="from-a-store")


def test_a_process_builds_its_services_class_keeping_the_values_read() -> None:
    platform = PlatformSettings(namespace="ns-y", simulator_seed=9, access_token_ttl_s=61)
    market = _service_settings(platform, _manifest("market_data"))
    core = _service_settings(platform, _manifest("core"))
    assert type(market) is MarketSettings
    assert (market.namespace, market.simulator_seed) == ("ns-y", 9)
    assert not hasattr(market, "stripe_api_key")
    assert type(core) is CoreSettings
    assert core.access_token_ttl_s == 61


def _manifest(name: str) -> ServiceManifest:
    from propstream.manifests import service

    return service(name)
