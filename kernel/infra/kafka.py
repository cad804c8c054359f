"""A single-node Apache Kafka (KRaft, broker + controller) from Maven Central's jars."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from kernel.exceptions import InfraError
from kernel.infra.procs import (
    PidfileServer,
    ensure_port_free,
    port_open,
    run_tool,
    running,
    spawn,
    wait_for,
)
from kernel.settings import ROOT, Settings

KAFKA_VERSION = "4.1.2"
POM = ROOT / "infra" / "kafka" / "pom.xml"
TOOLS_POM = ROOT / "infra" / "kafka" / "tools" / "pom.xml"

LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def fetch_jars(pom: Path, dest: Path, *, what: str) -> int:
    """Resolve the jars of `pom` into `dest` with Maven, once; return how many there are."""
    marker = dest / ".complete"
    if marker.exists() and marker.read_text() == pom.read_text():
        return len(list(dest.glob("*.jar")))
    if shutil.which("mvn") is None:
        raise InfraError(f"Maven (mvn) is not on PATH, so the {what} jars cannot be fetched: "
                         "install it with `apt-get install -y maven`")
    # Resolve into a folder of its own and rename it into place only when complete: an
    # interrupted download (Ctrl-C) leaves no folder that looks finished, and the next run
    # starts it over.
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = [
        "mvn", "-q", "-B", "-U", "-Dstyle.color=never", "-f", str(pom),
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
        f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
    ]
    result = run_tool(argv)
    if result.returncode != 0:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        errors = [line.removeprefix("[ERROR] ") for line in plain.splitlines()
                  if line.startswith("[ERROR]")][:1]
        raise InfraError(
            f"fetching the {what} jars from Maven Central failed ({' | '.join(errors)[:300]}); "
            "check that Maven Central is reachable (mvn settings, proxy) and retry"
        )
    (partial / ".complete").write_text(pom.read_text())
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    else:
        shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return len(list(dest.glob("*.jar")))


class KafkaServer(PidfileServer):
    name = "kafka"
    grace = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root: Path = settings.cache_dir / "kafka"
        self.libs = self.root / "libs"
        self.data = self.root / "data"
        self.logs = self.root / "logs"
        self.pidfile = settings.cache_dir / "run" / "kafka.pid"
        self.launched: tuple[int, int, float] | None = None  # pid, jars, when: by launch_early

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    def java(self) -> str:
        found = shutil.which("java")
        if found is None:
            raise InfraError("Java is not on PATH; Kafka needs Java 17 or newer: "
                             "`apt-get install -y openjdk-17-jre-headless`")
        out = run_tool([found, "-version"])
        first = (out.stderr or out.stdout).splitlines()[:1]
        version = first[0].split('"')[1] if first and '"' in first[0] else ""
        major = version.split(".")[0]
        if major.isdigit() and int(major) < 17:
            raise InfraError(f"Java {version} is too old for Kafka {KAFKA_VERSION}; install "
                             "Java 17 or newer (`apt-get install -y openjdk-17-jre-headless`)")
        return found

    def classpath(self) -> str:
        return f"{self.libs}/*"

    def properties(self) -> str:
        host, port, cport = self.settings.host, self.port, self.settings.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(1024 * 1024 + 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def up(self) -> str:
        if self.launched is None:
            pid = running(self.pidfile)
            if pid is not None:
                return f"already running (pid {pid})"
            self.launch_early()
        assert self.launched is not None
        pid, count, began = self.launched
        wait_for(lambda: port_open(self.settings.host, self.port), timeout=90,
                 what="Kafka", log=self.logs / "server.log", pid=pid)
        wait_for(self._answers_metadata, timeout=60, what="Kafka metadata",
                 log=self.logs / "server.log", pid=pid)
        return f"started Kafka {KAFKA_VERSION} (pid {pid}, port {self.port}, {count} jars) " \
               f"in {time.monotonic() - began:.1f} s"

    def launch_early(self) -> None:
        """Fetch, format and spawn the broker without waiting for it (`up` waits): `infra up`
        starts PostgreSQL, Redis and stripe-mock while the JVM boots."""
        if self.launched is not None or running(self.pidfile) is not None:
            return
        java = self.java()
        count = fetch_jars(POM, self.libs, what=f"Kafka {KAFKA_VERSION}")
        for port, var in ((self.port, "PROPSTREAM_KAFKA_PORT"),
                          (self.settings.kafka_controller_port,
                           "PROPSTREAM_KAFKA_CONTROLLER_PORT")):
            ensure_port_free(self.settings.host, port, what="Kafka", variable=var)
        self.logs.mkdir(parents=True, exist_ok=True)
        config = self.root / "server.properties"
        config.write_text(self.properties())
        log4j = self.root / "log4j2.properties"
        log4j.write_text(LOG4J.format(log=self.logs / "server.log"))
        jvm_log = [f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.logs}"]
        if not (self.data / "meta.properties").exists():
            self._format(java, jvm_log)
        heap = f"-Xmx{self.settings.kafka_heap_mb}m"
        argv = [java, f"-Xms{min(256, self.settings.kafka_heap_mb)}m", heap, "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true", *jvm_log,
                "-cp", self.classpath(), "kafka.Kafka", str(config)]
        began = time.monotonic()
        pid = spawn(argv, log=self.logs / "stdout.log", pidfile=self.pidfile,
                    env={**os.environ, "KAFKA_HEAP_OPTS": heap})
        self.launched = (pid, count, began)

    def _format(self, java: str, jvm_log: list[str]) -> None:
        """Format the storage in a folder of its own, renamed into place once complete: an
        interrupted format leaves nothing the next start would take for a formatted log."""
        partial = self.data.with_name(self.data.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(self.data, ignore_errors=True)  # no meta.properties: never formatted
        config = self.root / "format.properties"
        config.write_text(self.properties().replace(f"log.dirs={self.data}\n",
                                                    f"log.dirs={partial}\n"))
        result = run_tool(
            [java, *jvm_log, "-cp", self.classpath(), "kafka.tools.StorageTool", "format",
             "--standalone", f"--cluster-id={_cluster_id()}", "-c", str(config),
             "--ignore-formatted"])
        if result.returncode != 0:
            raise InfraError(f"formatting Kafka storage in {self.data} failed: "
                             f"{(result.stderr or result.stdout).strip()[-300:]}")
        partial.rename(self.data)
        config.unlink(missing_ok=True)

    def _answers_metadata(self) -> bool:
        return asyncio.run(_metadata_ok(self.settings.bootstrap_servers))


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them: 16 bytes, URL-safe base64, no padding.

    Like Kafka's own `Uuid.randomUuid`, never one that begins with "-": the storage tool
    would take it for an option (`-t: expected one argument`), 1 start in 64.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


async def _metadata_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.start()
        await client.list_topics()
        return True
    except Exception:
        return False
    finally:
        await client.close()
