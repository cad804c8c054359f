"""Lint and render the Helm chart without a cluster: `helm lint` and `helm template`.

helm comes from scripts/install-helm.sh (pinned, built with `go install` into .cache/bin);
the script returns at once when it is already installed and builds it otherwise, so this
test never skips for want of helm.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from propstream.manifests import platform

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "propstream"
INSTALL_HELM = ROOT / "scripts" / "install-helm.sh"
RELEASE = "rel"
# A `go install` build of helm lacks the release ldflags and assumes Kubernetes 1.20, which
# the chart's kubeVersion (>=1.25) refuses; name a supported version explicitly.
KUBE_VERSION = "1.31.0"
SECRET_KEYS = {"PROPSTREAM_PG_DSN", "PROPSTREAM_REDIS_URL", "PROPSTREAM_SECRET_KEY",
               "PROPSTREAM_STRIPE_API_KEY", "PROPSTREAM_STRIPE_WEBHOOK_SECRET",
               "PROPSTREAM_DATA_KEY_SECRET"}

DEFAULTS: tuple[str, ...] = ()
EXISTING_SECRET: tuple[str, ...] = ("--set", "existingSecret=propstream-prod")
VALUE_SETS = {"defaults": DEFAULTS, "existing-secret": EXISTING_SECRET}

# A cold helm install downloads and compiles it: about 4 minutes on 2 cores.
pytestmark = pytest.mark.timeout(1200)

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="module")
def helm() -> str:
    result = subprocess.run(["bash", str(INSTALL_HELM)], capture_output=True, text=True,
                            check=False, timeout=1100)
    assert result.returncode == 0, f"installing helm failed:\n{result.stderr[-2000:]}"
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def render(helm: str) -> Render:
    cache: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def run(*args: str) -> list[dict[str, Any]]:
        if args not in cache:
            result = subprocess.run(
                [helm, "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, *args],
                capture_output=True, text=True, check=False, timeout=120)
            assert result.returncode == 0, result.stderr
            cache[args] = [d for d in yaml.safe_load_all(result.stdout) if d]
        return cache[args]

    return run


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], c)
            for d in docs if d["kind"] in ("Deployment", "Job")
            for c in _pod_spec(d)["containers"]]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_strictly(helm: str, values: tuple[str, ...]) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values],
        capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_deployment_serving_http_has_liveness_and_readiness_probes(
        render: Render, values: tuple[str, ...]) -> None:
    serving = 0
    for deployment in _of_kind(render(*values), "Deployment"):
        for container in _pod_spec(deployment)["containers"]:
            if {p["name"] for p in container.get("ports", ())} <= {"metrics"}:
                continue  # deciders and projections serve only /metrics; they exit on failure
            serving += 1
            names = {p["name"] for p in container["ports"]}
            live = container["livenessProbe"]["httpGet"]
            ready = container["readinessProbe"]["httpGet"]
            assert (live["path"], ready["path"]) == ("/livez", "/readyz")
            assert live["port"] in names and ready["port"] in names
    assert serving >= 1, "the API serves HTTP, so at least one container must have probes"


@pytest.mark.parametrize(("component", "port", "variable"), [
    ("api", 8000, "PROPSTREAM_API_PORT"),
    ("market-api", 8001, "PROPSTREAM_MARKET_API_PORT"),
])
def test_each_api_listens_on_its_port_behind_its_service(
        render: Render, component: str, port: int, variable: str) -> None:
    docs = render()

    def of_component(kind: str) -> dict[str, Any]:
        return next(d for d in _of_kind(docs, kind)
                    if d["metadata"]["labels"]["app.kubernetes.io/component"] == component)

    service, api = of_component("Service"), of_component("Deployment")
    assert service["spec"]["ports"][0]["port"] == port
    (container,) = _pod_spec(api)["containers"]
    assert container["ports"][0]["containerPort"] == port
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    (configmap,) = _of_kind(docs, "ConfigMap")
    assert configmap["data"][variable] == str(port)
    assert configmap["data"]["PROPSTREAM_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_pod_templates_carry_the_config_checksum(render: Render, values: tuple[str, ...]) -> None:
    deployments = _of_kind(render(*values), "Deployment")
    assert deployments
    for deployment in deployments:
        annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        assert re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/config", "")), \
            deployment["metadata"]["name"]


def test_a_config_change_changes_the_checksum(render: Render) -> None:
    def checksums(*values: str) -> set[str]:
        return {d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for d in _of_kind(render(*values), "Deployment")}

    before = checksums()
    after = checksums("--set", "config.logLevel=DEBUG")
    assert len(before) == 1 and len(after) == 1 and before != after


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_no_secret_is_rendered_and_secrets_come_only_by_reference(
        render: Render, values: tuple[str, ...]) -> None:
    docs = render(*values)
    assert not [d for d in _of_kind(docs, "Secret") if d.get("data") or d.get("stringData")]
    assert not _of_kind(docs, "Secret")
    expected = "propstream-prod" if values else f"{RELEASE}-propstream"
    (configmap,) = _of_kind(docs, "ConfigMap")
    assert not SECRET_KEYS & set(configmap["data"])
    for owner, container in _containers(docs):
        env = {e["name"]: e for e in container.get("env", [])}
        assert set(env) >= SECRET_KEYS, owner
        for key in SECRET_KEYS:
            assert "value" not in env[key], f"{owner} has {key} inline"
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": expected, "key": key}


def test_extra_env_refuses_a_secret_name(helm: str) -> None:
    result = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
         "--set", "extraEnv.PROPSTREAM_SECRET_KEY=plain-text"],
        capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode != 0
    assert "extraEnv.PROPSTREAM_SECRET_KEY is a secret" in result.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_topics_job_is_a_pre_install_and_pre_upgrade_hook(
        render: Render, values: tuple[str, ...]) -> None:
    (job,) = _of_kind(render(*values), "Job")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert {"pre-install", "pre-upgrade"} <= hooks
    (container,) = _pod_spec(job)["containers"]
    assert container["args"] == ["topics", "apply"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROPSTREAM_KAFKA_BOOTSTRAP"] == "propstream-kafka-bootstrap:9092"


def test_kafka_bootstrap_comes_from_values(render: Render) -> None:
    docs = render("--set", "kafka.bootstrap=main-kafka-bootstrap.kafka:9092")
    (configmap,) = _of_kind(docs, "ConfigMap")
    assert configmap["data"]["PROPSTREAM_KAFKA_BOOTSTRAP"] == "main-kafka-bootstrap.kafka:9092"


def test_the_gateways_connection_limits_come_from_values_as_its_settings_read_them(
        render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    from ws_gateway.config import GatewaySettings

    docs = render("--set", "wsGateway.trustedProxies={10.0.0.0/8,fd00::/8}",
                  "--set", "wsGateway.maxConnectionsPerIp=40")
    (configmap,) = _of_kind(docs, "ConfigMap")
    for key, value in configmap["data"].items():
        if key.startswith("PROPSTREAM_WS_"):
            monkeypatch.setenv(key, value)  # as the pod's environment (envFrom the ConfigMap)
    settings = GatewaySettings()
    assert [str(n) for n in settings.ws_trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert (settings.ws_max_connections_per_ip, settings.ws_max_connections_per_user) == (40, 50)
    (default,) = _of_kind(render(), "ConfigMap")
    assert default["data"]["PROPSTREAM_WS_TRUSTED_PROXIES"] == "[]"


def test_deployments_run_every_platform_process(render: Render) -> None:
    """The chart runs exactly the processes of the services' manifests, one Deployment each
    (its `workers:` values are generated from them: `propstream docs generate`)."""
    run_args = sorted(tuple(c["args"]) for _owner, c in _containers(render())
                      if c["args"][0] == "run")
    assert run_args == sorted(("run", *argv) for argv in platform().values())


def test_projection_runs_once_and_is_never_overlapped(render: Render) -> None:
    for deployment in _of_kind(render("--set", "decider.replicas=3"), "Deployment"):
        name = deployment["metadata"]["name"]
        if "-projection-" in name:
            assert deployment["spec"]["replicas"] == 1
        if "-projection-" in name or name.endswith("-decider"):
            assert deployment["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(
        render: Render, values: tuple[str, ...]) -> None:
    docs = render(*values)
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            assert _pod_spec(doc)["securityContext"]["runAsNonRoot"] is True
    for owner, container in _containers(docs):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, owner
        assert context["allowPrivilegeEscalation"] is False, owner
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], owner
        assert container["resources"]["requests"], owner


def test_api_has_a_disruption_budget_and_pods_a_service_account(render: Render) -> None:
    docs = render()
    (pdb,) = _of_kind(docs, "PodDisruptionBudget")
    api = next(d for d in _of_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api"))
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    (account,) = _of_kind(docs, "ServiceAccount")
    for deployment in _of_kind(docs, "Deployment"):
        assert _pod_spec(deployment)["serviceAccountName"] == account["metadata"]["name"]


def test_values_file_stays_short() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert len(lines) <= 125  # 120 before the WebSocket gateway's three lines


@pytest.mark.parametrize("component", ["api", "market-api", "ws-gateway"])
def test_apis_serve_metrics_on_the_metrics_port_only_and_are_scraped_there(
        render: Render, component: str) -> None:
    docs = render("--set", "metrics.port=9300")
    (configmap,) = _of_kind(docs, "ConfigMap")
    assert configmap["data"]["PROPSTREAM_METRICS_PORT"] == "9300"
    api = next(d for d in _of_kind(docs, "Deployment")
               if d["metadata"]["labels"]["app.kubernetes.io/component"] == component)
    (container,) = _pod_spec(api)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9300 and ports["http"] != 9300
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9300"
    assert annotations["prometheus.io/path"] == "/metrics"
    service = next(d for d in _of_kind(docs, "Service")
                   if d["metadata"]["labels"]["app.kubernetes.io/component"] == component)
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
