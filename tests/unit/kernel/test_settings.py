"""Settings: one validated object; a bad value stops the process naming the variable."""

from __future__ import annotations

import itertools

import pytest
from pydantic import SecretStr, ValidationError

from kernel.settings import is_loopback, load_settings
from propstream.settings import PlatformSettings as Settings

OWN_SECRETS = {"secret_key": SecretStr("s3cret-from-a-vault"),
               "stripe_webhook_secret": SecretStr("whsec_from_a_vault"),
               "stripe_api_key": SecretStr("sk_live_from_a_vault"),
               "data_key_secret": SecretStr("kek-from-a-vault")}
SECRET_VARIABLES = {"secret_key": "PROPSTREAM_SECRET_KEY",
                    "stripe_webhook_secret": "PROPSTREAM_STRIPE_WEBHOOK_SECRET",
                    "stripe_api_key": "PROPSTREAM_STRIPE_API_KEY",
                    "data_key_secret": "PROPSTREAM_DATA_KEY_SECRET"}
LOOPBACK_BINDS = ("127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST")
PUBLIC_BINDS = ("0.0.0.0", "::", "10.1.2.3", "192.168.1.20", "api.example.com", "")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are what is tested here, not the PROPSTREAM_* of the shell (CI sets ports)."""
    import os

    for name in list(os.environ):
        if name.startswith("PROPSTREAM_"):
            monkeypatch.delenv(name)


def test_bad_value_exits_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROPSTREAM_KAFKA_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exited:
        load_settings(Settings)
    assert exited.value.code == 2
    assert "PROPSTREAM_KAFKA_PORT" in capsys.readouterr().err


def test_prod_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="PROPSTREAM_SECRET_KEY"):
        Settings(env="prod")
    assert Settings(env="prod", **OWN_SECRETS).env == "prod"


@pytest.mark.parametrize("address", LOOPBACK_BINDS)
def test_loopback_addresses_are_loopback(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", PUBLIC_BINDS)
def test_any_other_address_may_be_public(address: str) -> None:
    assert not is_loopback(address)


@pytest.mark.parametrize(("env", "host", "secret"), list(itertools.product(
    ("dev", "test", "prod"), ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3"),
    sorted(SECRET_VARIABLES))))
def test_a_default_secret_is_accepted_only_in_dev_or_test_on_loopback(
        env: str, host: str, secret: str) -> None:
    """Every combination: env x bind x (this one secret left at its default, the others own)."""
    own_others = {k: v for k, v in OWN_SECRETS.items() if k != secret}
    allowed = env in ("dev", "test") and is_loopback(host)
    if allowed:
        assert Settings(env=env, host=host, **own_others).host == host
        return
    with pytest.raises(ValidationError) as refused:
        Settings(env=env, host=host, **own_others)
    message = str(refused.value)
    assert SECRET_VARIABLES[secret] in message
    assert not any(name in message for k, name in SECRET_VARIABLES.items() if k != secret)


@pytest.mark.parametrize(("env", "host"), list(itertools.product(
    ("dev", "test", "prod"), ("127.0.0.1", "::1", "0.0.0.0", "10.1.2.3"))))
def test_own_secrets_are_accepted_everywhere(env: str, host: str) -> None:
    assert Settings(env=env, host=host, **OWN_SECRETS).env == env


def test_a_public_metrics_bind_is_not_a_developers_loopback() -> None:
    with pytest.raises(ValidationError, match="PROPSTREAM_SECRET_KEY"):
        Settings(env="dev", host="127.0.0.1", metrics_host="0.0.0.0")
    assert Settings(env="dev", host="127.0.0.1", metrics_host="::1").metrics_bind == "::1"


def test_the_image_default_bind_without_env_exits_naming_every_default_secret(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """As the image did before it set PROPSTREAM_ENV: 0.0.0.0 and no env (so `dev`)."""
    monkeypatch.setenv("PROPSTREAM_HOST", "0.0.0.0")
    with pytest.raises(SystemExit) as exited:
        load_settings(Settings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert all(name in err for name in SECRET_VARIABLES.values())
    assert "dev-only-not-a-secret" not in err and "whsec_dev" not in err


def test_no_configuration_on_loopback_still_runs_for_a_developer() -> None:
    assert Settings().developer_loopback


def test_ports_must_differ() -> None:
    with pytest.raises(ValueError, match="must differ"):
        Settings(kafka_port=15432)


def test_namespace_prefixes_topics_and_names_the_schema() -> None:
    plain = Settings()
    assert plain.topic("instrument.events") == "instrument.events"
    assert plain.pg_schema == "public"
    spaced = Settings(namespace="t-abc")
    assert spaced.topic("instrument.events") == "t-abc.instrument.events"
    assert spaced.pg_schema == "t_abc"


def test_external_endpoints_override_local_ones() -> None:
    s = Settings(kafka_bootstrap="kafka:9092", pg_dsn=SecretStr("postgresql://u@db/p"))
    assert s.bootstrap_servers == "kafka:9092"
    assert s.database_url == "postgresql://u@db/p"
    assert Settings().bootstrap_servers == "127.0.0.1:19092"


def test_idempotency_lock_must_outlast_the_command_timeout() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="IDEMPOTENCY_LOCK_TTL_S"):
        Settings(idempotency_lock_ttl_s=5, command_timeout_ms=5000)
    assert Settings(idempotency_lock_ttl_s=6, command_timeout_ms=5000).idempotency_lock_ttl_s == 6
