"""The Helm chart, read as a specification: what a release of voxfarm deploys.

Every test renders the chart offline with Helm's own engine (no cluster) for
the chart defaults and for each example values file in deploy/examples/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from producer.cli import build_parser
from tests.helm.chart_render import (
    CHART_DIR,
    EXAMPLES,
    NAMESPACE,
    RELEASE,
    REPO,
    Manifest,
    Rendered,
    containers,
    env_of,
    load_values,
    render,
    validate_manifest,
)

RENDERS = ["defaults", *(path.stem for path in EXAMPLES)]
DOCKER_DIR = REPO / "deploy" / "docker"
DASHBOARD = REPO / "deploy" / "grafana" / "voxfarm.json"
RULES = REPO / "deploy" / "prometheus" / "voxfarm-rules.yml"


def _probe_seconds(probe: dict[str, Any]) -> int:
    return int(probe["failureThreshold"]) * int(probe["periodSeconds"])


def _worker_container(deployment: Manifest) -> dict[str, Any]:
    (worker,) = [c for c in containers(deployment, init=False) if c["name"] == "worker"]
    return worker


def _pools_of(rendered: Rendered) -> list[Manifest]:
    return [
        d
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    ]


# --- lint and schema validity -----------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, *EXAMPLES], ids=lambda p: p.stem if p else "defaults")
def test_chart_lints_clean_in_strict_mode(values_file: Path | None) -> None:
    values = load_values(values_file) if values_file else None
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version="v1.31.0")

    assert report["errors"] == []
    # Strict mode turns warnings into errors; infos (e.g. "icon is recommended") would show here too.
    assert report["messages"] == []


@pytest.mark.parametrize("name", RENDERS)
def test_every_rendered_manifest_validates_against_its_schema(rendered: dict[str, Rendered], name: str) -> None:
    manifests = rendered[name].manifests

    assert manifests
    for manifest in manifests:
        # Only the dashboard may go elsewhere: to the namespace the Grafana sidecar watches.
        if not manifest["metadata"]["name"].endswith("-dashboard"):
            assert manifest["metadata"]["namespace"] == NAMESPACE
        validate_manifest(manifest)


@pytest.mark.parametrize("name", RENDERS)
def test_every_resource_carries_the_recommended_labels(rendered: dict[str, Rendered], name: str) -> None:
    for manifest in rendered[name].manifests:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "voxfarm"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "voxfarm"
        assert labels["helm.sh/chart"].startswith("voxfarm-")


# --- placement: control on x86, pools on their cards and architectures ------------------


@pytest.mark.parametrize("name", ["defaults", "hybrid-ascend-gpu", "managed-redis-s3"])
def test_control_plane_is_pinned_to_amd64_nodes(rendered: dict[str, Rendered], name: str) -> None:
    control = rendered[name].get("Deployment", f"{RELEASE}-voxfarm-control")

    assert control["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"] == "amd64"


def test_each_pool_requests_its_device_resource_and_lands_on_its_arch(hybrid: Rendered) -> None:
    expected = {
        # pool: (extended resource, cards per pod, devices spec, arch, extra node labels)
        "ascend910": ("huawei.com/Ascend910", 8, "npu:0-7", "arm64", {"accelerator": "huawei-Ascend910"}),
        "gpu": ("nvidia.com/gpu", 4, "cuda:0-3", "amd64", {}),
        "cpu": (None, 4, "cpu:4", "amd64", {}),
    }
    for pool, (resource, cards, devices, arch, labels) in expected.items():
        deployment = hybrid.pool_deployment(pool)
        worker = _worker_container(deployment)

        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": arch, **labels}
        if resource:
            assert worker["resources"]["limits"][resource] == cards
            assert worker["resources"]["requests"][resource] == cards
        else:
            assert not any("/" in name for name in worker["resources"]["limits"])
        # One worker process per card: the pool supervisor is given exactly the pod's cards.
        assert worker["args"][:3] == ["pool", "--devices", devices]


def test_ascend_pool_mounts_the_driver_read_only_and_joins_the_device_group(hybrid: Rendered) -> None:
    deployment = hybrid.pool_deployment("ascend910")
    spec = deployment["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in _worker_container(deployment)["volumeMounts"]}

    assert set(host_paths.values()) == {
        "/usr/local/Ascend/driver",
        "/usr/local/dcmi",
        "/usr/local/bin/npu-smi",
        "/etc/ascend_install.info",
    }
    assert all(mounts[name]["readOnly"] is True for name in host_paths)
    assert spec["securityContext"]["supplementalGroups"] == [1000]
    # The other families get no host mounts unless asked.
    assert not any("hostPath" in v for v in hybrid.pool_deployment("gpu")["spec"]["template"]["spec"]["volumes"])


def test_gpu_pool_tolerates_the_gpu_taint(hybrid: Rendered) -> None:
    tolerations = hybrid.pool_deployment("gpu")["spec"]["template"]["spec"]["tolerations"]

    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_pools_consume_only_their_buckets_of_their_one_model(hybrid: Rendered) -> None:
    env = env_of(_worker_container(hybrid.pool_deployment("ascend910")))
    cpu_env = env_of(_worker_container(hybrid.pool_deployment("cpu")))

    assert json.loads(env["VOXFARM_BUCKET_EDGES"]["value"]) == [128, 256, 512]
    assert json.loads(cpu_env["VOXFARM_BUCKET_EDGES"]["value"]) == [32, 64]
    assert env["VOXFARM_ENGINE"]["value"] == "piper-torch"
    assert env["VOXFARM_FRAME_SORT_BATCHES"]["value"] == "8"
    # The control plane keeps every edge: producers route to all of them.
    assert json.loads(hybrid.configmap_env()["VOXFARM_BUCKET_EDGES"]) == [32, 64, 128, 256, 512]


# --- command lines, probes and drain ----------------------------------------------------


@pytest.mark.parametrize("name", RENDERS)
def test_every_command_line_parses_with_the_voxfarm_cli(rendered: dict[str, Rendered], name: str) -> None:
    parser = build_parser()
    voxfarm_containers = [
        container
        for workload in rendered[name].workloads()
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] in {"control", "worker"}
        for container in containers(workload)
    ]

    assert voxfarm_containers
    for container in voxfarm_containers:
        # No command: the image entrypoint (voxfarm, or the toolkit wrapper) receives the arguments.
        assert "command" not in container
        try:
            parsed = parser.parse_args(container["args"])
        except SystemExit:
            pytest.fail(f"{container['name']}: `voxfarm {' '.join(container['args'])}` does not parse")
        assert parsed.command in {"control", "worker", "pool"}


@pytest.mark.parametrize("name", RENDERS)
def test_workers_are_ready_only_after_warm_up_and_drain_within_the_grace_period(
    rendered: dict[str, Rendered], name: str
) -> None:
    batch_limit = float(rendered[name].configmap_env()["VOXFARM_BATCH_TIME_LIMIT_S"])
    pools = _pools_of(rendered[name])

    assert pools
    for deployment in pools:
        spec = deployment["spec"]["template"]["spec"]
        worker = _worker_container(deployment)
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}

        assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert worker["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
            assert worker[probe]["httpGet"]["port"] in ports
        # First compilation and warm-up of every bucket x batch shape takes minutes, not seconds.
        assert _probe_seconds(worker["startupProbe"]) >= 600
        assert spec["terminationGracePeriodSeconds"] > batch_limit
        assert env_of(worker)["VOXFARM_CACHE_DIR"]["value"] == "/var/cache/voxfarm"


def test_multi_card_pod_probes_the_supervisor_and_exposes_one_metrics_port_per_card(hybrid: Rendered) -> None:
    worker = _worker_container(hybrid.pool_deployment("ascend910"))
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}

    assert ports == {"health": 9299, **{f"metrics-{i}": 9300 + i for i in range(8)}}
    assert worker["readinessProbe"]["httpGet"]["port"] == "health"
    assert worker["args"][worker["args"].index("--health-port") + 1] == "9299"
    assert _probe_seconds(worker["startupProbe"]) == 3600


def test_single_card_pod_runs_one_worker_probed_on_its_own_port(rendered: dict[str, Rendered]) -> None:
    worker = _worker_container(rendered["managed-redis-s3"].pool_deployment("gpu"))

    assert worker["args"][:3] == ["worker", "--device", "cuda:0"]
    assert worker["readinessProbe"]["httpGet"]["port"] == "metrics-0"
    assert worker["ports"] == [{"name": "metrics-0", "containerPort": 9300, "protocol": "TCP"}]


def test_warm_up_init_container_fills_the_cache_on_card_zero(hybrid: Rendered) -> None:
    deployment = hybrid.pool_deployment("ascend910")
    (warmup,) = deployment["spec"]["template"]["spec"]["initContainers"]
    worker = _worker_container(deployment)

    assert warmup["args"][:3] == ["worker", "--device", "npu:0"]
    assert "--warmup-only" in warmup["args"]
    assert warmup["resources"] == worker["resources"]
    cache_mounts = [m for m in warmup["volumeMounts"] if m["name"] == "cache"]
    assert cache_mounts == [{"name": "cache", "mountPath": "/var/cache/voxfarm"}]
    claim = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "cache",
        "persistentVolumeClaim": {"claimName": f"{RELEASE}-voxfarm-worker-ascend910-cache"},
    } in claim
    assert hybrid.get("PersistentVolumeClaim", f"{RELEASE}-voxfarm-worker-ascend910-cache")["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]


@pytest.mark.parametrize("name", RENDERS)
def test_every_pool_has_a_disruption_budget(rendered: dict[str, Rendered], name: str) -> None:
    budgets = {b["metadata"]["name"]: b for b in rendered[name].of_kind("PodDisruptionBudget")}

    for deployment in _pools_of(rendered[name]):
        budget = budgets[deployment["metadata"]["name"]]
        assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


# --- secrets and hardening --------------------------------------------------------------

SENTINEL_REDIS = "redis-sentinel-Xq7"
SENTINEL_S3_KEY = "AKIA-SENTINEL-9Zp"
SENTINEL_S3_SECRET = "s3-secret-sentinel-4Rw"


@pytest.fixture(scope="module")
def with_inline_credentials(chart: helm_python.Chart) -> Rendered:
    """Credentials given as plain values: the chart must move them into Secrets."""
    return render(
        chart,
        {
            "redis": {"auth": {"password": SENTINEL_REDIS}},
            "storage": {
                "s3": {"existingSecret": "", "accessKeyId": SENTINEL_S3_KEY, "secretAccessKey": SENTINEL_S3_SECRET}
            },
            "pools": [{"name": "gpu", "family": "cuda", "warmup": {"initContainer": True}}],
        },
    )


def test_credentials_given_as_values_end_up_only_in_secrets(with_inline_credentials: Rendered) -> None:
    for manifest in with_inline_credentials.manifests:
        text = yaml.safe_dump(manifest)
        if manifest["kind"] == "Secret":
            continue
        for sentinel in (SENTINEL_REDIS, SENTINEL_S3_KEY, SENTINEL_S3_SECRET):
            assert sentinel not in text, f"{manifest['kind']}/{manifest['metadata']['name']} inlines a secret"
    assert with_inline_credentials.get("Secret", f"{RELEASE}-voxfarm-s3")["type"] == "Opaque"


@pytest.mark.parametrize("name", [*RENDERS, "inline-credentials"])
def test_secret_settings_come_from_secret_key_refs(
    rendered: dict[str, Rendered], with_inline_credentials: Rendered, name: str
) -> None:
    release = with_inline_credentials if name == "inline-credentials" else rendered[name]
    secret_names = re.compile(r"(PASSWORD|SECRET|SECRET_ACCESS_KEY|ACCESS_KEY_ID|TOKEN|_AUTH)$")

    for configmap in release.of_kind("ConfigMap"):
        assert not any(secret_names.search(key) for key in configmap.get("data", {})), configmap["metadata"]["name"]
    for workload in release.workloads():
        for container in containers(workload):
            for var in container.get("env", []):
                if secret_names.search(var["name"]):
                    assert "value" not in var, f"{container['name']}: {var['name']} is a plain value"
                    assert "secretKeyRef" in var["valueFrom"]


@pytest.mark.parametrize("name", RENDERS)
def test_every_pod_and_container_runs_hardened(rendered: dict[str, Rendered], name: str) -> None:
    for workload in rendered[name].workloads():
        spec = workload["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context.get("privileged", False) is False
            assert "add" not in context["capabilities"]
            # A read-only root needs a writable /tmp (the pool supervisor's ready files, CANN logs).
            if container["name"] != "metrics":
                tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
                assert tmp and tmp[0]["name"] in writable
    for account in rendered[name].of_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


# --- broker and storage -----------------------------------------------------------------


def test_in_chart_redis_persists_an_append_only_file_behind_auth(rendered: dict[str, Rendered]) -> None:
    release = rendered["defaults"]
    config = release.get("ConfigMap", f"{RELEASE}-voxfarm-redis")["data"]["valkey.conf"].splitlines()
    statefulset = release.get("StatefulSet", f"{RELEASE}-voxfarm-redis")
    (server,) = [c for c in containers(statefulset) if c["name"] == "redis"]

    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= set(config)
    assert not any(line.startswith("requirepass") for line in config)
    assert '--requirepass "$REDIS_PASSWORD"' in server["command"][-1]
    assert env_of(server)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-voxfarm-redis"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert (
        release.configmap_env()["VOXFARM_REDIS_URL"]
        == f"redis://{RELEASE}-voxfarm-redis.{NAMESPACE}.svc.cluster.local:6379/0"
    )


def test_external_redis_replaces_the_broker_and_keeps_its_password_in_the_named_secret(
    rendered: dict[str, Rendered],
) -> None:
    release = rendered["managed-redis-s3"]
    values = load_values(REPO / "deploy" / "examples" / "managed-redis-s3.yaml")
    (worker,) = containers(release.pool_deployment("gpu"))

    assert release.of_kind("StatefulSet") == []
    assert release.configmap_env()["VOXFARM_REDIS_URL"] == values["externalRedis"]["url"]
    assert env_of(worker)["VOXFARM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "voxfarm-redis",
        "key": "redis-password",
    }
    # Ambient (IRSA) credentials: no key variables at all, and the role on the service account.
    assert "AWS_ACCESS_KEY_ID" not in env_of(worker)
    account = release.get("ServiceAccount", f"{RELEASE}-voxfarm")
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


def test_file_storage_mounts_one_shared_volume_in_every_pod(rendered: dict[str, Rendered]) -> None:
    release = rendered["kind-cpu"]
    claim = release.get("PersistentVolumeClaim", f"{RELEASE}-voxfarm-storage")

    assert release.configmap_env()["VOXFARM_STORAGE_URL"].startswith("file:///srv/voxfarm/")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for workload in release.workloads():
        if workload["kind"] == "StatefulSet":
            continue
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["shared-storage"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


# --- network policies -------------------------------------------------------------------


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


@pytest.mark.parametrize("name", RENDERS)
def test_every_component_has_a_network_policy(rendered: dict[str, Rendered], name: str) -> None:
    release = rendered[name]
    policies = {p["metadata"]["name"]: p for p in release.of_kind("NetworkPolicy")}
    selected = {json.dumps(w["spec"]["selector"]["matchLabels"], sort_keys=True) for w in release.workloads()}

    assert selected == {json.dumps(p["spec"]["podSelector"]["matchLabels"], sort_keys=True) for p in policies.values()}
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_workers_take_only_scrapes_and_reach_only_dns_redis_and_s3(hybrid: Rendered) -> None:
    policy = hybrid.get("NetworkPolicy", f"{RELEASE}-voxfarm-worker-ascend910")["spec"]
    (ingress,) = policy["ingress"]

    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert {"protocol": "TCP", "port": 9300, "endPort": 9307} in ingress["ports"]
    assert {p["port"] for p in ingress["ports"]} == {9299, 9300}
    assert _ports(policy["egress"]) == {53, 6379, 8080}
    redis_rule = next(r for r in policy["egress"] if _ports([r]) == {6379})
    assert redis_rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"


def test_redis_accepts_only_this_release_and_initiates_nothing(hybrid: Rendered) -> None:
    policy = hybrid.get("NetworkPolicy", f"{RELEASE}-voxfarm-redis")["spec"]
    peers = policy["ingress"][0]["from"]

    assert peers[0] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "voxfarm", "app.kubernetes.io/instance": RELEASE}}
    }
    # KEDA reads list lengths for the Ascend pool, which scales on Redis.
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in peers
    assert policy["egress"] == []


def test_external_services_are_reached_on_the_ports_of_their_urls(rendered: dict[str, Rendered]) -> None:
    policy = rendered["managed-redis-s3"].get("NetworkPolicy", f"{RELEASE}-voxfarm-control")["spec"]

    assert _ports(policy["egress"]) == {53, 6379, 443}
    redis_rule = next(r for r in policy["egress"] if _ports([r]) == {6379})
    assert redis_rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


# --- autoscaling ------------------------------------------------------------------------


def test_keda_scales_the_ascend_pool_on_each_of_its_bucket_queues(hybrid: Rendered) -> None:
    scaled = hybrid.get("ScaledObject", f"{RELEASE}-voxfarm-worker-ascend910")["spec"]
    model = "voxfarm.piper-torch.en_US-joe-medium"

    assert scaled["scaleTargetRef"]["name"] == f"{RELEASE}-voxfarm-worker-ascend910"
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"], scaled["cooldownPeriod"]) == (1, 4, 600)
    assert [t["metadata"]["listName"] for t in scaled["triggers"]] == [
        f"{model}.b128",
        f"{model}.b256",
        f"{model}.b512",
        f"{model}.interactive",
    ]
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["address"] == f"{RELEASE}-voxfarm-redis.{NAMESPACE}.svc.cluster.local:6379"
        assert trigger["metadata"]["listLength"] == "2000"
        assert trigger["authenticationRef"]["name"] == f"{RELEASE}-voxfarm-redis-auth"
    auth = hybrid.get("TriggerAuthentication", f"{RELEASE}-voxfarm-redis-auth")["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": f"{RELEASE}-voxfarm-redis", "key": "redis-password"}]
    # KEDA owns the replica count of a scaled pool; Helm must not fight it on upgrade.
    assert "replicas" not in hybrid.pool_deployment("ascend910")["spec"]
    assert hybrid.pool_deployment("cpu")["spec"]["replicas"] == 2


def test_keda_scales_the_gpu_pool_on_estimated_work_seconds(hybrid: Rendered) -> None:
    (trigger,) = hybrid.get("ScaledObject", f"{RELEASE}-voxfarm-worker-gpu")["spec"]["triggers"]

    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == (
        'sum(voxfarm_queue_work_seconds{model="piper-torch.en_US-joe-medium",bucket=~"32|64|128|256|512"})'
    )
    assert trigger["metadata"]["threshold"] == "3600"


def test_external_rediss_broker_is_scaled_on_over_tls(rendered: dict[str, Rendered]) -> None:
    (first, *_) = rendered["managed-redis-s3"].get("ScaledObject", f"{RELEASE}-voxfarm-worker-gpu")["spec"]["triggers"]

    assert first["metadata"]["address"] == "master.voxfarm-broker.abcdef.euw1.cache.amazonaws.com:6379"
    assert first["metadata"]["enableTLS"] == "true"


# --- observability ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployed", "in_chart"),
    [(DASHBOARD, CHART_DIR / "files" / "voxfarm.json"), (RULES, CHART_DIR / "files" / "voxfarm-rules.yml")],
    ids=["dashboard", "rules"],
)
def test_chart_copies_of_the_dashboard_and_rules_match_deploy(deployed: Path, in_chart: Path) -> None:
    assert deployed.is_file(), f"{deployed.relative_to(REPO)} is missing"
    assert in_chart.read_bytes() == deployed.read_bytes(), "run helm/sync-files.sh"


def test_dashboard_and_rules_configmaps_carry_the_files_from_deploy(hybrid: Rendered) -> None:
    assert DASHBOARD.is_file() and RULES.is_file(), "the dashboard or the rules are missing from deploy/"
    dashboard = hybrid.get("ConfigMap", f"{RELEASE}-voxfarm-dashboard")
    rules = hybrid.get("ConfigMap", f"{RELEASE}-voxfarm-rules")
    prometheus_rule = hybrid.get("PrometheusRule", f"{RELEASE}-voxfarm")

    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["data"]["voxfarm.json"] == DASHBOARD.read_text()
    assert rules["data"]["voxfarm-rules.yml"] == RULES.read_text()
    assert prometheus_rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert prometheus_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_service_monitors_scrape_every_card_of_every_pool(hybrid: Rendered) -> None:
    monitor = hybrid.get("ServiceMonitor", f"{RELEASE}-voxfarm-worker-ascend910")["spec"]
    service = hybrid.get("Service", f"{RELEASE}-voxfarm-worker-ascend910")["spec"]

    assert [e["port"] for e in monitor["endpoints"]] == [f"metrics-{i}" for i in range(8)]
    assert {p["name"] for p in service["ports"]} >= {e["port"] for e in monitor["endpoints"]}
    assert service["clusterIP"] == "None"
    assert {m["metadata"]["name"] for m in hybrid.of_kind("ServiceMonitor")} == {
        f"{RELEASE}-voxfarm-control",
        f"{RELEASE}-voxfarm-redis",
        *(f"{RELEASE}-voxfarm-worker-{p}" for p in ("ascend910", "gpu", "cpu")),
    }


def test_pod_monitors_replace_pool_service_monitors_when_chosen(chart: helm_python.Chart) -> None:
    release = render(
        chart,
        {
            "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
            "pools": [{"name": "gpu", "family": "cuda", "devicesPerPod": 2}],
        },
    )
    (pod_monitor,) = release.of_kind("PodMonitor")

    assert [e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["metrics-0", "metrics-1"]
    assert [m["metadata"]["name"] for m in release.of_kind("ServiceMonitor")] == [f"{RELEASE}-voxfarm-control"]


def test_notes_name_every_pool_and_how_to_submit(hybrid: Rendered) -> None:
    for pool in ("ascend910", "gpu", "cpu"):
        assert f"deployment/{RELEASE}-voxfarm-worker-{pool}" in hybrid.notes
    assert "voxfarm submit" in hybrid.notes
    assert "hostPath" in hybrid.notes


# --- images -----------------------------------------------------------------------------


def _pip_installs(dockerfile: Path) -> list[list[str]]:
    """The arguments of every `pip install` the Dockerfile runs."""
    text = dockerfile.read_text().replace("\\\n", " ")
    runs = [line.strip()[len("RUN") :] for line in text.splitlines() if line.strip().startswith("RUN")]
    installs: list[list[str]] = []
    for run in runs:
        for command in re.split(r"&&|;", run):
            words = command.split()
            if "pip" in words and "install" in words:
                installs.append(words[words.index("install") + 1 :])
    return installs


def test_control_image_installs_no_torch_and_no_accelerator_stack() -> None:
    dockerfile = DOCKER_DIR / "Dockerfile.control"
    installs = _pip_installs(dockerfile)
    bases = re.findall(r"^(?:FROM|ARG \w+_IMAGE=)\s*(\S+)", dockerfile.read_text(), re.MULTILINE)

    assert installs == [["/wheels/voxfarm-*.whl"]]
    assert not any(re.search(r"cann|dtk|cuda|nvidia|torch", base, re.IGNORECASE) for base in bases)
    # The build itself refuses an image in which torch turned up transitively.
    assert "control image must not contain" in dockerfile.read_text()


@pytest.mark.parametrize("name", ["cpu", "cuda", "ascend", "dcu"])
def test_worker_images_install_torch_and_voxfarm_with_its_torch_extra(name: str) -> None:
    installs = [" ".join(args) for args in _pip_installs(DOCKER_DIR / f"Dockerfile.{name}")]

    assert any("torch" in args.lower() and "voxfarm" not in args for args in installs)
    assert any("voxfarm-*.whl)[torch]" in args for args in installs)


def test_ascend_image_pins_the_documented_cann_torch_torch_npu_pairing() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile.ascend").read_text()
    readme = (REPO / "deploy" / "README.md").read_text()

    assert "ARG CANN_IMAGE=quay.io/ascend/cann:9.0.0-910b-ubuntu22.04-py3.11" in dockerfile
    assert "ARG TORCH_VERSION=2.10.0" in dockerfile
    assert "ARG TORCH_NPU_VERSION=2.10.0" in dockerfile
    assert re.search(r"CANN 9\.0\.0.*torch 2\.10\.0.*torch_npu 2\.10\.0", readme)


@pytest.mark.parametrize(
    ("name", "package"), [("cpu", "libflac12"), ("cuda", "libflac12"), ("ascend", "libflac8"), ("dcu", "libflac8")]
)
def test_worker_images_install_libflac_to_encode_segments_without_libsndfile(name: str, package: str) -> None:
    """shared.flac loads the system's libFLAC; without it segments fall back to libsndfile's slower encoder."""
    dockerfile = (DOCKER_DIR / f"Dockerfile.{name}").read_text()

    assert re.search(rf"apt-get install -y --no-install-recommends [^\n]*\b{package}\b", dockerfile)


@pytest.mark.parametrize("name", ["cpu", "cuda", "ascend", "dcu"])
def test_worker_images_run_as_the_chart_user_with_the_voxfarm_entrypoint(name: str) -> None:
    dockerfile = (DOCKER_DIR / f"Dockerfile.{name}").read_text()

    assert "USER 10001:10001" in dockerfile
    assert re.search(r'^ENTRYPOINT \["(voxfarm|/usr/local/bin/voxfarm-entrypoint)"\]$', dockerfile, re.MULTILINE)


@pytest.mark.parametrize("kind", ["PodMonitor", "ServiceMonitor"])
def test_worker_monitors_give_every_series_the_pool_label(chart: helm_python.Chart, kind: str) -> None:
    """The dashboard's pool variable and the pool alerts group worker series by a `pool` label."""
    release = render(
        chart,
        {
            "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": kind == "PodMonitor"}},
            "pools": [{"name": "gpu", "family": "cuda", "devicesPerPod": 2}],
        },
    )
    monitor = release.get(kind, f"{RELEASE}-voxfarm-worker-gpu")["spec"]
    endpoints = monitor.get("podMetricsEndpoints") or monitor["endpoints"]
    rule = {"sourceLabels": ["__meta_kubernetes_pod_label_voxfarm_pool"], "targetLabel": "pool"}
    assert endpoints and all(rule in endpoint["relabelings"] for endpoint in endpoints)


def test_tenants_and_two_control_replicas_come_from_values(chart: helm_python.Chart) -> None:
    values = {
        "control": {"replicas": 2},
        "scheduling": {"tenants": {"studio": {"weight": 3, "quota": 200}, "team": {"weight": 1}}},
    }
    release = render(chart, values)

    env = release.configmap_env()
    assert json.loads(env["VOXFARM_TENANTS"]) == {"studio": {"weight": 3, "quota": 200}, "team": {"weight": 1}}
    assert float(env["VOXFARM_LEASE_TTL_S"]) > 0 and float(env["VOXFARM_PRIORITY_AGING_S"]) > 0
    control = [d for d in release.of_kind("Deployment") if d["metadata"]["name"].endswith("-control")]
    assert [d["spec"]["replicas"] for d in control] == [2]
    from shared.settings import Settings

    settings = Settings(tenants=json.loads(env["VOXFARM_TENANTS"]), lease_ttl_s=float(env["VOXFARM_LEASE_TTL_S"]))
    assert settings.tenants["studio"] == {"weight": 3.0, "quota": 200.0}


def test_work_units_and_upload_processes_for_fast_cards_come_from_values(chart: helm_python.Chart) -> None:
    release = render(
        chart,
        {
            "scheduling": {"unitSegments": 32},
            "pools": [{"name": "gpu", "family": "cuda", "uploadProcesses": 4}, {"name": "cpu", "family": "cpu"}],
        },
    )

    assert release.configmap_env()["VOXFARM_DISPATCH_UNIT_SEGMENTS"] == "32"
    assert env_of(_worker_container(release.pool_deployment("gpu")))["VOXFARM_UPLOAD_PROCESSES"]["value"] == "4"
    assert env_of(_worker_container(release.pool_deployment("cpu")))["VOXFARM_UPLOAD_PROCESSES"]["value"] == "0"
    assert render(chart, {}).configmap_env()["VOXFARM_DISPATCH_UNIT_SEGMENTS"] == "1"
    from shared.settings import Settings

    settings = Settings(dispatch_unit_segments=32, upload_processes=4)
    assert (settings.dispatch_unit_segments, settings.upload_processes) == (32, 4)


@pytest.mark.parametrize(
    "values",
    [
        {"scheduling": {"unitSegments": 0}},
        {"scheduling": {"unitSegments": 65}},
        {"pools": [{"name": "gpu", "family": "cuda", "uploadProcesses": -1}]},
    ],
    ids=["no segments", "over the message limit", "negative processes"],
)
def test_work_units_and_upload_processes_out_of_range_are_refused(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render(chart, values)


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ({"Bad Name": {"weight": 1}}, "'Bad Name' does not match pattern"),
        ({"team": {"weight": 0}}, "/scheduling/tenants/team/weight"),
        ({"team": {"quota": 0}}, "/scheduling/tenants/team/quota"),
        ({"team": {"share": 2}}, "/scheduling/tenants/team"),
    ],
)
def test_bad_tenant_values_are_refused(chart: helm_python.Chart, tenants: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(message)):
        render(chart, {"scheduling": {"tenants": tenants}})
