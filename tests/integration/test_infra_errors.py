"""Infrastructure problems stop with one clear line naming the cause and the fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kernel.exceptions import InfraError
from kernel.infra.kafka import KafkaServer, fetch_jars
from kernel.infra.redis import RedisServer
from propstream.settings import PlatformSettings as Settings

pytestmark = pytest.mark.integration


def test_port_taken_by_another_process_names_the_port_and_the_variable(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = Settings(cache_dir=tmp_path, redis_port=port)
        with pytest.raises(InfraError) as caught:
            RedisServer(settings).up()
    message = str(caught.value)
    assert f"port {port}" in message and "PROPSTREAM_REDIS_PORT" in message
    assert "\n" not in message


def test_a_failed_start_up_stops_what_it_had_started(tmp_path: Path) -> None:
    from kernel import infra

    pg_port = _free_port()
    with socket.socket() as squatter:  # Redis, second in line, cannot start
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        settings = Settings(cache_dir=tmp_path, pg_port=pg_port,
                            redis_port=squatter.getsockname()[1],
                            kafka_port=_free_port(), kafka_controller_port=_free_port())
        said: list[str] = []
        with pytest.raises(InfraError, match="PROPSTREAM_REDIS_PORT"):
            infra.up(settings, said.append)
    assert any("stopping what it started: postgres" in line for line in said), said
    with socket.socket() as probe:  # PostgreSQL, which had started, is gone again
        assert probe.connect_ex(("127.0.0.1", pg_port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_java_says_how_to_install_it(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, so no java
    with pytest.raises(InfraError) as caught:
        KafkaServer(Settings(cache_dir=tmp_path)).java()
    assert "Java is not on PATH" in str(caught.value)
    assert "apt-get install -y openjdk-17-jre-headless" in str(caught.value)


def test_failed_jar_download_names_maven_and_what_to_check(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.propstream</groupId><artifactId>broken</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency>
    <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
    <version>0.0.0-does-not-exist</version>
  </dependency></dependencies>
</project>""")
    with pytest.raises(InfraError) as caught:
        fetch_jars(pom, tmp_path / "libs", what="Kafka test")
    message = str(caught.value)
    assert message.startswith("fetching the Kafka test jars from Maven Central failed")
    assert "0.0.0-does-not-exist" in message
    assert not (tmp_path / "libs" / ".complete").exists()


def test_missing_maven_says_how_to_install_it(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InfraError, match="apt-get install -y maven"):
        fetch_jars(pom, tmp_path / "libs", what="Kafka")


def test_infra_up_is_idempotent_and_reports_running(base_settings: Settings) -> None:
    from kernel import infra

    lines: list[str] = []
    took, started = infra.up(base_settings, lines.append)
    assert started == []
    assert took < 20, "a warm start must take under 20 s"
    assert sum("already running" in line for line in lines) == len(infra.components(
        base_settings))
    assert all(state.startswith("running") for state in infra.status(base_settings).values())
