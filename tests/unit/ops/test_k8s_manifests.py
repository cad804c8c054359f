"""Static checks of the cluster prerequisites in k8s/ and of the Dockerfile (no cluster)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from kernel.infra.kafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs() if d["kind"] == kind]
    return doc


def test_every_manifest_parses_and_names_kind_and_api_version() -> None:
    docs = _docs()
    assert len(docs) >= 8
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"]["name"]


def test_kafka_is_the_version_we_run_locally_in_kraft_with_a_node_pool() -> None:
    kafka, pool = _one("Kafka"), _one("KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert str(kafka["spec"]["kafka"]["version"]) == KAFKA_VERSION == "4.1.2"
    assert kafka["spec"]["kafka"]["metadataVersion"].startswith("4.1-")
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert "zookeeper" not in kafka["spec"]


def test_topics_are_left_to_the_catalogue() -> None:
    assert not [d for d in _docs() if d["kind"] == "KafkaTopic"]
    assert _one("Kafka")["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_chart_default_bootstrap_is_the_strimzi_bootstrap_service() -> None:
    values = yaml.safe_load((ROOT / "helm" / "propstream" / "values.yaml").read_text())
    cluster = _one("Kafka")["metadata"]["name"]
    assert values["kafka"]["bootstrap"] == f"{cluster}-kafka-bootstrap:9092"


def test_no_secret_values_in_manifests() -> None:
    assert not [d for d in _docs() if d["kind"] == "Secret"]
    for doc in _docs():
        if doc["kind"] != "StatefulSet":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if re.search(r"PASSWORD|AUTH", env["name"]):
                    assert "secretKeyRef" in env["valueFrom"], env["name"]


@pytest.mark.parametrize("name", ["propstream-postgres", "propstream-redis"])
def test_stateful_stores_have_a_service_probes_and_a_volume(name: str) -> None:
    docs = _docs()
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == name]
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"] and container["livenessProbe"]
    assert sts["spec"]["volumeClaimTemplates"]
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_ray_cluster_matches_the_locked_ray() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (ray,) = [p["version"] for p in lock["package"] if p["name"] == "ray"]
    cluster = _one("RayCluster")
    assert cluster["spec"]["rayVersion"] == ray
    images = {c["image"] for g in [cluster["spec"]["headGroupSpec"],
                                   *cluster["spec"]["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"]}
    assert images == {f"rayproject/ray:{ray}-py311"}


def test_dockerfile_installs_the_locked_runtime_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM python:3.11-slim") == 2
    assert "uv sync --frozen --no-dev" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["propstream"]' in text


def _image_environment() -> dict[str, str]:
    """The PROPSTREAM_* variables the final stage of the Dockerfile sets."""
    text = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    env_block = re.search(r"^ENV (.*?)(?<!\\)\n", text, re.M | re.S)
    assert env_block is not None
    pairs = re.findall(r"(PROPSTREAM_[A-Z_]+)=(\S+)", env_block.group(1))
    return dict(pairs)


def test_the_image_refuses_the_public_dev_secrets(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The image binds 0.0.0.0: started without real secrets it must stop, naming them."""
    from kernel.settings import load_settings
    from propstream.settings import PlatformSettings

    env = _image_environment()
    assert env["PROPSTREAM_HOST"] == "0.0.0.0"
    for name in [n for n in os.environ if n.startswith("PROPSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(PlatformSettings)
    assert "PROPSTREAM_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("PROPSTREAM_SECRET_KEY", "from-a-secret-store")
    monkeypatch.setenv("PROPSTREAM_STRIPE_API_KEY", "sk_live_from_a_secret_store")
    monkeypatch.setenv("PROPSTREAM_STRIPE_WEBHOOK_SECRET", "whsec_from_a_secret_store")
    monkeypatch.setenv("PROPSTREAM_DATA_KEY_SECRET", "kek_from_a_secret_store")
    assert load_settings(PlatformSettings).host == "0.0.0.0"
