"""The PromQL and SQL of every Grafana dashboard panel, runnable as is, and the metric names it may use.

`dashboard_queries()` replaces Grafana's variables with concrete values (every "All" selection
becomes `.*`), so an integration test can send each query to a real Prometheus, or to PostgreSQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from devstack.prometheus import rule_groups as load_rule_groups

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

# What Strimzi's Kafka exporter (danielqsj/kafka_exporter; deploy/k8s/base/kafka.yaml, `kafkaExporter`) exposes
# that the dashboards read. No such exporter runs in the local stack.
KAFKA_EXPORTER: frozenset[str] = frozenset(
    {
        "kafka_brokers",
        "kafka_topic_partition_current_offset",
        "kafka_topic_partition_under_replicated_partition",
        "kafka_consumergroup_lag",
    }
)

# What CloudNativePG's exporter exposes (deploy/k8s/base/postgres.yaml, `monitoring`) that the dashboards read:
# its default monitoring queries' metrics and its collector's own. Locally, devstack/cnpg-queries.yaml.
CLOUDNATIVE_PG: frozenset[str] = frozenset(
    {
        "cnpg_collector_up",
        "cnpg_collector_pg_wal_archive_status",
        "cnpg_backends_total",
        "cnpg_pg_settings_setting",
        "cnpg_pg_database_size_bytes",
        "cnpg_pg_replication_lag",
        "cnpg_pg_replication_streaming_replicas",
        "cnpg_pg_stat_archiver_failed_count",
        "cnpg_pg_stat_archiver_seconds_since_last_archival",
    }
)

# What the services expose at /metrics (names as scraped, histograms with their series), plus Prometheus'
# own `up`; with the Kafka and PostgreSQL exporters' metrics above, the metric catalogue.
SERVICES: frozenset[str] = frozenset(
    {
        "up",
        "http_server_requests_total",
        *(f"http_server_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")),
        "complaints_registered_total",
        "customer_notifications_total",
        "relay_published_events_total",
        "relay_lag_events",
        "relay_publish_failures_total",
        "complaints_first_responded_total",
        "complaints_resolved_total",
        *(f"complaint_first_response_working_seconds_{s}" for s in ("bucket", "sum", "count")),
        *(f"complaint_resolution_working_seconds_{s}" for s in ("bucket", "sum", "count")),
        "sla_limit_working_seconds",
        "sla_milestones_total",
        "consumer_events_total",
        "consumer_lag_messages",
        "complaints_open",
        "complaints_at_risk",
        "complaints_overdue",
        "complaints_oldest_open_age_seconds",
        *(f"consumer_event_delay_seconds_{s}" for s in ("bucket", "sum", "count")),
    }
)
CATALOGUE: frozenset[str] = SERVICES | KAFKA_EXPORTER | CLOUDNATIVE_PG

# What Grafana would put in a query over a one-hour range at a 15 s scrape interval; a panel's own
# minimum interval (e.g. one day per bar) takes the place of both intervals.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


class Query(NamedTuple):
    dashboard: str
    panel: str
    expr: str


def recorded_metrics() -> frozenset[str]:
    return frozenset(rule["record"] for group in load_rule_groups() for rule in group["rules"] if "record" in rule)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each template variable's default: its current value, or its "All" value (`.*` unless set)."""
    values = dict(GRAFANA_BUILTINS)
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if current in (None, "", "$__all"):
            current = variable.get("allValue") or ".*"
        values[variable["name"]] = str(current)
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"Grafana variable ${name} is not defined in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def dashboard_queries(language: str = "expr", chosen: dict[str, str] | None = None) -> list[Query]:
    """(dashboard title, panel title, query) for every PromQL target (`expr`) of every panel, or every SQL
    one (`rawSql`), variables substituted: by their defaults, or as `chosen`."""
    queries = []
    for path in dashboard_files():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        defaults = variable_values(dashboard) | (chosen or {})
        for panel in dashboard["panels"]:
            values = dict(defaults)
            if "interval" in panel:
                values["__interval"] = values["__rate_interval"] = panel["interval"]
            for target in panel.get("targets", []):
                if language in target:
                    queries.append(Query(dashboard["title"], panel["title"], substitute(target[language], values)))
    return queries


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier not preceded by a digit or a dot (durations, numbers) and not called (functions).
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (label names, strings, functions and durations left out)."""
    bare = _LABEL_LISTS.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", expr))))
    return {name for name in _NAME.findall(bare) if name not in _KEYWORDS}
