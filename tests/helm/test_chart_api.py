"""The chart's front door: the API Deployment, Service, optional Ingress, admin token Secret and policies."""

from __future__ import annotations

import base64
import json
from typing import Any

import helm_python
import pytest

from producer.cli import build_parser
from producer.tokens import _TOKEN
from shared.settings import Settings
from tests.helm.chart_render import RELEASE, Rendered, containers, env_of, render

API = f"{RELEASE}-voxfarm-api"


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_api_runs_the_voxfarm_api_command_with_secrets_from_secret_key_refs(rendered: dict[str, Rendered]) -> None:
    release = rendered["defaults"]
    (api,) = containers(release.get("Deployment", API))
    args = build_parser().parse_args(api["args"])
    env = env_of(api)

    assert args.command == "api" and args.host == "0.0.0.0" and args.port == 8080
    assert env["VOXFARM_API_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": f"{API}-token", "key": "token"}
    assert "secretKeyRef" in env["VOXFARM_REDIS_PASSWORD"]["valueFrom"]
    assert all("value" not in env[name] for name in ("AWS_SECRET_ACCESS_KEY", "VOXFARM_API_BOOTSTRAP_TOKEN"))
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    settings = Settings(
        api_max_upload_bytes=int(env["VOXFARM_API_MAX_UPLOAD_BYTES"]["value"]),
        api_cors_origins=json.loads(env["VOXFARM_API_CORS_ORIGINS"]["value"]),
        api_max_priority=int(env["VOXFARM_API_MAX_PRIORITY"]["value"]),
    )
    assert settings.api_cors_origins == [], "CORS is closed by default"
    assert settings.api_max_priority == 50, "tenants cannot outrank one another by default"


def test_generated_admin_token_has_the_format_the_api_registers(rendered: dict[str, Rendered]) -> None:
    secret = rendered["defaults"].get("Secret", f"{API}-token")
    token = base64.b64decode(secret["data"]["token"]).decode()

    assert _TOKEN.match(token), token


def test_an_existing_token_secret_replaces_the_generated_one(chart: helm_python.Chart) -> None:
    release = render(chart, {"api": {"adminToken": {"existingSecret": "my-token", "secretKey": "value"}}})
    (api,) = containers(release.get("Deployment", API))

    reference = env_of(api)["VOXFARM_API_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "my-token", "key": "value"}
    assert not [s for s in release.of_kind("Secret") if s["metadata"]["name"] == f"{API}-token"]


def test_service_fronts_the_api_port_and_the_ingress_is_optional(
    rendered: dict[str, Rendered], chart: helm_python.Chart
) -> None:
    service = rendered["defaults"].get("Service", API)["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert rendered["defaults"].of_kind("Ingress") == []

    ingress = render(
        chart,
        {
            "api": {
                "ingress": {
                    "enabled": True,
                    "className": "nginx",
                    "hosts": [{"host": "books.example.org"}],
                    "tls": [{"secretName": "books-tls", "hosts": ["books.example.org"]}],
                }
            }
        },
    )
    (api,) = containers(ingress.get("Deployment", API))
    assert env_of(api)["VOXFARM_API_FORWARDED_ALLOW_IPS"]["value"] == "*", "the cookie is Secure behind TLS"
    assert "VOXFARM_API_FORWARDED_ALLOW_IPS" not in env_of(containers(rendered["defaults"].get("Deployment", API))[0])
    ingress = ingress.get("Ingress", API)["spec"]
    assert ingress["ingressClassName"] == "nginx" and ingress["tls"][0]["secretName"] == "books-tls"
    (rule,) = ingress["rules"]
    assert rule["host"] == "books.example.org"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": API, "port": {"name": "http"}}


def test_api_takes_clients_on_its_port_only_and_reaches_only_dns_redis_and_s3(rendered: dict[str, Rendered]) -> None:
    release = rendered["defaults"]
    policy = release.get("NetworkPolicy", API)["spec"]
    control = release.get("NetworkPolicy", f"{RELEASE}-voxfarm-control")["spec"]

    assert _ports(policy["ingress"]) == {8080}
    assert policy["egress"] == control["egress"], "the API reaches what the control service reaches, no more"
    redis_peers = release.get("NetworkPolicy", f"{RELEASE}-voxfarm-redis")["spec"]["ingress"][0]["from"]
    labels = release.get("Deployment", API)["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in redis_peers[0]["podSelector"]["matchLabels"].items())


def test_api_clients_can_be_limited_to_the_ingress_controller(chart: helm_python.Chart) -> None:
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    policy = render(chart, {"api": {"allowFrom": [controller]}}).get("NetworkPolicy", API)["spec"]

    assert policy["ingress"][0]["from"] == [controller]


def test_api_can_be_left_out(chart: helm_python.Chart) -> None:
    release = render(chart, {"api": {"enabled": False}})

    assert not [m for m in release.manifests if m["metadata"]["name"].startswith(API)]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api": {"port": 0}}, "/api/port"),
        ({"api": {"corsOrigins": ["*"]}}, "/api/corsOrigins/0"),
        ({"api": {"ingress": {"hosts": [{"name": "x"}]}}}, "/api/ingress/hosts/0"),
    ],
)
def test_bad_api_values_are_refused(chart: helm_python.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render(chart, values)
