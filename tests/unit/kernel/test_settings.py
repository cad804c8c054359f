"""Settings: one validated object; a bad value stops the process naming the variable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from kernel.settings import Settings, load_settings


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
        load_settings()
    assert exited.value.code == 2
    assert "PROPSTREAM_KAFKA_PORT" in capsys.readouterr().err


def test_prod_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="PROPSTREAM_SECRET_KEY"):
        Settings(env="prod")
    assert Settings(env="prod", secret_key=SecretStr("s3cret-from-a-vault"),
                    stripe_webhook_secret=SecretStr("whsec_from_a_vault"),
                    data_key_secret=SecretStr("kek-from-a-vault")).env == "prod"


def test_prod_refuses_the_default_data_key_secret() -> None:
    with pytest.raises(ValueError, match="PROPSTREAM_DATA_KEY_SECRET"):
        Settings(env="prod", secret_key=SecretStr("s3cret-from-a-vault"),
                 stripe_webhook_secret=SecretStr("whsec_from_a_vault"))


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
