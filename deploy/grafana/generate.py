"""Writes the Grafana dashboards in `dashboards/` from the panel lists below: this file is the source.

    python deploy/grafana/generate.py           # rewrite the JSON after editing this file
    python deploy/grafana/generate.py --check   # fail if the JSON is stale (tests/unit/test_dashboards.py)

Prometheus queries use only the metric catalogue (tests/dashboard_queries.py: the services' metrics, and
those of Strimzi's Kafka exporter and CloudNativePG that deploy/k8s scrapes) and the recording rules of
deploy/prometheus/prometheus-rules.yaml. Ratios whose numerator may have no series yet (no breach,
no 5xx, no dead letter) fall back to zero rather than to "no data". The grades dashboard reads the
read models through the PostgreSQL datasource (uid `read-models`): scoring's `hall_grades` and the
projections' timelines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24


def target(expr: str, legend: str = "", *, instant: bool = False) -> JSON:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "instant": instant,
        "range": not instant,
    }


def panel(
    kind: str,
    title: str,
    targets: list[JSON],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    description: str = "",
    defaults: JSON | None = None,
    overrides: list[JSON] | None = None,
    options: JSON | None = None,
    interval: str | None = None,
) -> JSON:
    result: JSON = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": overrides or []},
        "options": options or {},
    }
    if interval:
        result["interval"] = interval
    return result


READ_MODELS = {"type": "postgres", "uid": "read-models"}


def sql_panel(
    title: str, sql: str, *, kind: str = "table", width: int = 12, height: int = 8, description: str = ""
) -> JSON:
    """A panel of one SQL query against the read models, as a table (or a bar chart of its columns)."""
    result = panel(kind, title, [], width=width, height=height, description=description)
    result["datasource"] = READ_MODELS
    result["targets"] = [
        {
            "datasource": READ_MODELS,
            "refId": "A",
            "format": "table",
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": sql,
        }
    ]
    return result


def row(title: str) -> JSON:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": 0}}


def thresholds(*steps: tuple[float | None, str]) -> JSON:
    return {"thresholds": {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}}


def query_variable(name: str, label: str, query: str) -> JSON:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def custom_variable(name: str, label: str, values: list[str], default: str) -> JSON:
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "multi": False,
        "includeAll": False,
        "current": {"selected": True, "text": default, "value": default},
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
        "hide": 0,
    }


DATASOURCE_VARIABLE: JSON = {
    "type": "datasource",
    "name": "datasource",
    "label": "Data source",
    "query": "prometheus",
    "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
    "regex": "",
    "refresh": 1,
    "hide": 0,
}


def dashboard(uid: str, title: str, description: str, variables: list[JSON], panels: list[JSON]) -> JSON:
    """Numbers the panels and flows them left to right into rows of 24 columns."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if item["type"] == "row" or x + grid["w"] > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        item["id"] = number
        x, row_height = x + grid["w"], max(row_height, grid["h"])
        if item["type"] == "row":
            x = WIDTH
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["service-quality"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": [DATASOURCE_VARIABLE, *variables]},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def sum_by(labels: str, inner: str) -> str:
    return f"sum by ({labels}) ({inner})"


def zero_filled(labels: str, part: str, whole: str) -> str:
    """`sum by (labels) (part)`, with 0 where the whole has series but the part has none yet."""
    return f"({sum_by(labels, part)} or 0 * {sum_by(labels, whole)})"


def dashed(pattern: str) -> JSON:
    """An override drawing the series whose name matches `pattern` dashed: a limit, an objective."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }


# --- SLA overview -------------------------------------------------------------------------------

SLA_FILTER = 'priority=~"$priority", channel=~"$channel", province=~"$province"'
CLOCKS = {
    "first_response": ("First response", "complaints_first_responded_total", 0.99),
    "resolution": ("Resolution", "complaints_resolved_total", 0.98),
}
BUCKETS = {
    "first_response": "complaint_first_response_working_seconds_bucket",
    "resolution": "complaint_resolution_working_seconds_bucket",
}


def attainment(metric: str, by: str) -> str:
    """Share of clocks stopped within the limit over the dashboard's range, by one label."""
    breached = f'increase({metric}{{sla="breached", {SLA_FILTER}}}[$__range])'
    stopped = f"increase({metric}{{{SLA_FILTER}}}[$__range])"
    return f"1 - {zero_filled(by, breached, stopped)} / {sum_by(by, stopped)}"


def attainment_panels(clock: str) -> list[JSON]:
    name, metric, objective = CLOCKS[clock]
    return [
        panel(
            "bargauge",
            f"{name} attainment by {label}",
            [target(attainment(metric, by), f"{{{{{by}}}}}", instant=True)],
            unit="percentunit",
            width=8,
            height=10 if by == "province" else 8,
            description=f"Share of {name.lower()} clocks stopped within their limit over the dashboard's range; "
            f"the SLO is {objective:.0%}.",
            defaults={"min": 0, "max": 1, "decimals": 1, **thresholds((None, "red"), (objective, "green"))},
            options={"displayMode": "basic", "orientation": "horizontal", "showUnfilled": True},
        )
        for by, label in (("priority", "priority"), ("channel", "channel"), ("province", "unit (province)"))
    ]


def duration_panel(clock: str) -> JSON:
    name = CLOCKS[clock][0]
    buckets = f'{BUCKETS[clock]}{{priority=~"$priority"}}'
    quantiles = [
        target(
            f"histogram_quantile({q}, {sum_by('le, priority', f'rate({buckets}[$window])')})",
            f"{{{{priority}}}} p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]
    limit = target(
        f'max by (priority) (sla_limit_working_seconds{{clock="{clock}", priority=~"$priority"}})',
        "{{priority}} limit",
    )
    return panel(
        "timeseries",
        f"{name} duration p50 / p90 / p99 against the limit (working time)",
        [*quantiles, limit],
        unit="s",
        description=f"Quantiles of {name.lower()} durations in working seconds over the trailing $window, "
        "by priority; dashed: the policy's limit (the regulator-appeal channel rule is not shown).",
        overrides=[dashed(".* limit$")],
    )


def sla_overview() -> JSON:
    gauge = 'max by (priority) ({}{{priority=~"$priority"}})'
    budget = "1 - slo:sla_breached:ratio_rate30d / (1 - slo:objective:ratio)"
    burn = "slo:sla_breached:ratio_rate{} / (1 - slo:objective:ratio)"
    breaches = 'increase(sla_milestones_total{milestone="breach"}[$__interval])'
    escalations = 'increase(sla_milestones_total{milestone="escalation"}[$__interval])'
    milestones = "increase(sla_milestones_total[$__interval])"
    panels = [
        row("Attainment (over the dashboard's range)"),
        *attainment_panels("first_response"),
        *attainment_panels("resolution"),
        row("Durations against target"),
        duration_panel("first_response"),
        duration_panel("resolution"),
        row("Backlog now"),
        panel(
            "stat",
            "Open, at risk, overdue",
            [
                target(f"sum({gauge.format('complaints_open')})", "open", instant=True),
                target(f"sum({gauge.format('complaints_at_risk')})", "at risk", instant=True),
                target(
                    'sum(max by (clock, priority) (complaints_overdue{priority=~"$priority"}))',
                    "overdue (response or resolution)",
                    instant=True,
                ),
            ],
            width=8,
            description="Open: not closed. At risk: warned, not yet breached. Overdue: a clock breached while "
            "the complaint is still open (one complaint can be overdue on both clocks).",
        ),
        panel(
            "stat",
            "Oldest open complaint",
            [target("max(complaints_oldest_open_age_seconds)", "age", instant=True)],
            unit="dtdurations",
            width=4,
            description="Wall-clock age of the oldest complaint not yet closed.",
        ),
        panel(
            "timeseries",
            "Open and at risk by priority",
            [
                target(gauge.format("complaints_open"), "{{priority}} open"),
                target(gauge.format("complaints_at_risk"), "{{priority}} at risk"),
            ],
        ),
        panel(
            "timeseries",
            "Overdue now by clock and priority",
            [target('max by (clock, priority) (complaints_overdue{priority=~"$priority"})', "{{clock}} {{priority}}")],
            width=24,
            description="Open complaints whose clock has breached: a breach in progress, before it closes.",
        ),
        row("Breaches"),
        panel(
            "timeseries",
            "Breaches per day by clock",
            [target(zero_filled("clock", breaches, milestones), "{{clock}}")],
            interval="1d",
            description="Breach milestones fired by the escalation service (per bar: one day, or more on long ranges).",
            defaults={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}},
        ),
        panel(
            "timeseries",
            "Escalations per day by level",
            [target(zero_filled("level", escalations, milestones), "{{level}}")],
            interval="1d",
            defaults={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}},
        ),
        row("Error budget (all complaints; 30 days)"),
        panel(
            "stat",
            "Error budget remaining (30 days)",
            [target(budget, "{{slo}}", instant=True)],
            unit="percentunit",
            width=6,
            description="1 - (breached share over 30 days) / (1 - SLO); below 0 the SLO is missed.",
            defaults={"decimals": 1, **thresholds((None, "red"), (0, "orange"), (0.25, "green"))},
        ),
        panel(
            "timeseries",
            "Burn rate",
            [target(burn.format(window), f"{{{{slo}}}} {window}") for window in ("1h", "6h", "1d")],
            width=9,
            description="Budget consumption relative to the sustainable rate (1 = budget lasts exactly 30 days). "
            "Pages at 14.4 (1h) and 6 (6h), tickets at 3 (1d) and 1 (3d).",
            defaults={
                "custom": {"thresholdsStyle": {"mode": "line+area"}},
                **thresholds((None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")),
            },
        ),
        panel(
            "timeseries",
            "Attainment, trailing day, against the objective",
            [
                target("1 - slo:sla_breached:ratio_rate1d", "{{slo}}"),
                target("slo:objective:ratio", "{{slo}} objective"),
            ],
            unit="percentunit",
            width=9,
            overrides=[dashed(".* objective$")],
        ),
    ]
    variables = [
        query_variable("priority", "Priority", "label_values(complaints_first_responded_total, priority)"),
        query_variable("channel", "Channel", "label_values(complaints_first_responded_total, channel)"),
        query_variable("province", "Unit (province)", "label_values(complaints_first_responded_total, province)"),
        custom_variable("window", "Duration window", ["1h", "6h", "1d", "7d"], "1d"),
    ]
    return dashboard(
        "sq-sla-overview",
        "SLA overview",
        "First-response and resolution SLAs: attainment, durations against the limits, backlog, breaches, "
        "error budget. Priority, channel and unit filters apply where the metric carries the label.",
        variables,
        panels,
    )


# --- Pipeline -----------------------------------------------------------------------------------

JOB = 'job=~"$job"'


def rate(selector: str) -> str:
    return f"rate({selector}[$__rate_interval])"


def latency(quantile: float) -> JSON:
    buckets = rate(f"http_server_request_duration_seconds_bucket{{{JOB}}}")
    return panel(
        "timeseries",
        f"Latency p{round(quantile * 100)} by service and route",
        [target(f"histogram_quantile({quantile}, {sum_by('le, job, route', buckets)})", "{{job}} {{route}}")],
        unit="s",
    )


def kafka_panels() -> list[JSON]:
    """The brokers' view, from Strimzi's Kafka exporter (deploy/k8s/base/kafka.yaml, `kafkaExporter`): lag as the
    broker has the groups' committed offsets, beside the services' own consumer_lag_messages."""
    return [
        row("Kafka (Strimzi's Kafka exporter)"),
        panel(
            "stat",
            "Brokers, under-replicated partitions",
            [
                target("max(kafka_brokers)", "brokers", instant=True),
                target("sum(kafka_topic_partition_under_replicated_partition)", "under-replicated", instant=True),
            ],
            width=6,
            description="Brokers in the cluster as the exporter sees it, and partitions with a replica out of sync "
            "(0 unless a broker is down or behind).",
        ),
        panel(
            "timeseries",
            "Consumer-group lag by group and topic (broker's view)",
            [
                target(
                    sum_by("consumergroup, topic", "clamp_min(kafka_consumergroup_lag, 0)"),
                    "{{consumergroup}} {{topic}}",
                )
            ],
            width=9,
            description="Messages past each group's committed offset, summed over the partitions (a partition "
            "without a committed offset counts 0). KEDA scales the consumers on this lag.",
        ),
        panel(
            "timeseries",
            "Messages in per topic",
            [target(sum_by("topic", rate("kafka_topic_partition_current_offset")), "{{topic}}")],
            unit="ops",
            width=9,
            description="The rate at which each topic's end offsets grow, over its partitions.",
        ),
    ]


def postgresql_panels() -> list[JSON]:
    """CloudNativePG's exporter (deploy/k8s/base/postgres.yaml, `monitoring`): the cnpg_* metrics of each instance."""
    return [
        row("PostgreSQL (CloudNativePG)"),
        panel(
            "stat",
            "Instances up, streaming replicas",
            [
                target("sum(cnpg_collector_up)", "up", instant=True),
                target("max(cnpg_pg_replication_streaming_replicas)", "streaming replicas", instant=True),
            ],
            width=6,
            description="Instances whose PostgreSQL answers (red at none), and standbys streaming from the primary "
            "(none with one instance, as in the dev overlay).",
            defaults=thresholds((None, "red"), (1, "green")),
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "streaming replicas"},
                    "properties": [{"id": "thresholds", "value": thresholds((None, "blue"))["thresholds"]}],
                }
            ],
        ),
        panel(
            "timeseries",
            "Connections per instance against max_connections",
            [
                target(sum_by("pod", "cnpg_backends_total"), "{{pod}}"),
                target('max by (pod) (cnpg_pg_settings_setting{name="max_connections"})', "{{pod}} max_connections"),
            ],
            width=9,
            description="Backends of every state; dashed: the instance's max_connections. The services' pools at "
            "their maximum replicas fit below it (deploy/k8s/README.md, the connection budget).",
            overrides=[dashed(".* max_connections$")],
        ),
        panel(
            "timeseries",
            "Connections by role and state",
            [target(sum_by("usename, state", "cnpg_backends_total"), "{{usename}} {{state}}")],
            width=9,
            description="Each service logs in as its own role: its share of the connections, and how many are "
            "idle in a transaction.",
        ),
        panel(
            "timeseries",
            "Database size",
            [target('max by (datname) (cnpg_pg_database_size_bytes{datname!~"template.*"})', "{{datname}}")],
            unit="bytes",
            width=6,
        ),
        panel(
            "timeseries",
            "Replication lag",
            [target(sum_by("pod", "cnpg_pg_replication_lag"), "{{pod}}")],
            unit="s",
            width=6,
            description="How far each standby's replay is behind the primary (0 on the primary).",
        ),
        panel(
            "timeseries",
            "WAL waiting to be archived, failed archivals (trailing hour)",
            [
                target(sum_by("pod", 'cnpg_collector_pg_wal_archive_status{value="ready"}'), "{{pod}} waiting"),
                target(sum_by("pod", "increase(cnpg_pg_stat_archiver_failed_count[1h])"), "{{pod}} failed"),
            ],
            width=6,
            description="WAL segments not yet in the object store (the base backups' bucket), and failed attempts to "
            "put them there: point-in-time restore reaches only as far as the archived WAL.",
            defaults=thresholds((None, "green"), (1, "red")),
        ),
        panel(
            "timeseries",
            "Time since the last archived WAL",
            [target(sum_by("pod", "cnpg_pg_stat_archiver_seconds_since_last_archival"), "{{pod}}")],
            unit="s",
            width=6,
            description="On the primary; -1 if none was archived yet. PostgreSQL archives a segment when it is full "
            "or at archive_timeout (5 minutes under CloudNativePG).",
        ),
    ]


def pipeline() -> JSON:
    requests = rate(f"http_server_requests_total{{{JOB}}}")
    errors = rate(f'http_server_requests_total{{{JOB}, status=~"5.."}}')
    consumed = f"increase(consumer_events_total{{{JOB}}}[1h])"
    dead = f'increase(consumer_events_total{{{JOB}, outcome="dead_lettered"}}[1h])'
    event_delay = sum_by("consumer, le", rate(f"consumer_event_delay_seconds_bucket{{{JOB}}}"))
    notifications = f"increase(customer_notifications_total{{{JOB}}}[1h])"
    failed_notifications = f'increase(customer_notifications_total{{{JOB}, outcome="failed"}}[1h])'
    panels = [
        row("Services"),
        panel(
            "stat",
            "Targets up",
            [target(sum_by("job", f"up{{{JOB}}}"), "{{job}}", instant=True)],
            width=24,
            height=4,
            description="Instances answering scrapes, per service.",
            defaults=thresholds((None, "red"), (1, "green")),
        ),
        panel("timeseries", "Request rate by service", [target(sum_by("job", requests), "{{job}}")], unit="reqps"),
        panel(
            "timeseries",
            "5xx error ratio by service",
            [target(f"{zero_filled('job', errors, requests)} / {sum_by('job', requests)}", "{{job}}")],
            unit="percentunit",
        ),
        panel(
            "timeseries",
            "Request rate by route",
            [target(sum_by("job, route", requests), "{{job}} {{route}}")],
            unit="reqps",
        ),
        panel(
            "timeseries",
            "5xx rate by route",
            [target(zero_filled("job, route", errors, requests), "{{job}} {{route}}")],
            unit="reqps",
        ),
        latency(0.5),
        latency(0.99),
        row("Relays and consumers"),
        panel(
            "timeseries",
            "Relay lag (stored events not yet published)",
            [target(f"max by (relay) (relay_lag_events{{{JOB}}})", "{{relay}}")],
        ),
        panel(
            "timeseries",
            "Relay publications",
            [target(sum_by("relay", rate(f"relay_published_events_total{{{JOB}}}")), "{{relay}}")],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Consumer lag by consumer and topic",
            [target(f"max by (consumer, topic) (consumer_lag_messages{{{JOB}}})", "{{consumer}} {{topic}}")],
            unit="short",
        ),
        panel(
            "timeseries",
            "Consumed events by outcome",
            [target(sum_by("consumer, outcome", rate(f"consumer_events_total{{{JOB}}}")), "{{consumer}} {{outcome}}")],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Dead-lettered events (trailing hour)",
            [target(zero_filled("consumer", dead, consumed), "{{consumer}}")],
            description="Events sent to <consumer>.dead-letter.v1 in the hour before each point.",
            defaults=thresholds((None, "green"), (1, "red")),
        ),
        panel(
            "timeseries",
            "Event delay by consumer (occurred to applied; projections: read-model staleness)",
            [
                target(f"histogram_quantile({q}, {event_delay})", f"{{{{consumer}}}} p{round(q * 100)}")
                for q in (0.5, 0.99)
            ],
            unit="s",
        ),
        row("Customer notifications"),
        panel(
            "timeseries",
            "Notifications by channel and outcome",
            [
                target(
                    sum_by("channel, outcome", rate(f"customer_notifications_total{{{JOB}}}")),
                    "{{channel}} {{outcome}}",
                )
            ],
            unit="ops",
            description="sent; failed (for good, after the policy's attempts); retried; held (quiet hours).",
        ),
        panel(
            "timeseries",
            "Notifications failed for good, by channel and template (trailing hour)",
            [target(zero_filled("channel, template", failed_notifications, notifications), "{{channel}} {{template}}")],
            description="Each is a NotificationFailed on its complaint's timeline: tell those customers by a contact.",
            defaults=thresholds((None, "green"), (1, "red")),
        ),
        *kafka_panels(),
        *postgresql_panels(),
    ]
    variables = [
        query_variable("job", "Service", 'label_values(up{job=~"complaints|escalation|scoring|projections"}, job)'),
    ]
    return dashboard(
        "sq-pipeline",
        "Pipeline",
        "HTTP traffic, errors and latency by service and route; relays, consumers, dead letters and projection delay;"
        " customer notifications; Kafka (brokers, consumer-group lag, messages in) and PostgreSQL (connections,"
        " size, replication lag, WAL archiving).",
        variables,
        panels,
    )


GRADE_ORDER = "array_position(ARRAY['below', 'meets', 'good', 'excellent'], {}.grade)"
THIS_PERIOD = "SELECT * FROM scoring.hall_grades WHERE period = '$period'"
# The month before `$period`, e.g. 2026-11 for 2026-12, as the grades table names months.
LAST_PERIOD = (
    "SELECT * FROM scoring.hall_grades"
    " WHERE period = to_char(to_date('$period', 'YYYY-MM') - interval '1 month', 'YYYY-MM')"
)


def distribution(*units: str) -> str:
    keys = ", ".join(units)
    counts = ", ".join(
        f"count(*) FILTER (WHERE grade = '{grade}') AS {grade}" for grade in ("excellent", "good", "meets", "below")
    )
    return (
        f"SELECT {keys}, {counts}, count(*) FILTER (WHERE status = 'not_assessed') AS not_assessed"  # noqa: S608
        f" FROM ({THIS_PERIOD}) g GROUP BY {keys} ORDER BY {keys}"
    )


def grades() -> JSON:
    movement = (
        f"SELECT this.province, this.city,"  # noqa: S608 - this file's constants, for a dashboard
        f" count(*) FILTER (WHERE {GRADE_ORDER.format('this')} > {GRADE_ORDER.format('last')}) AS up,"
        f" count(*) FILTER (WHERE {GRADE_ORDER.format('this')} < {GRADE_ORDER.format('last')}) AS down,"
        f" count(*) FILTER (WHERE this.grade = last.grade) AS same,"
        " count(*) FILTER (WHERE this.grade IS NOT NULL AND last.grade IS NULL) AS newly_graded"
        f" FROM ({THIS_PERIOD}) this LEFT JOIN ({LAST_PERIOD}) last ON last.hall_id = this.hall_id"
        " GROUP BY this.province, this.city ORDER BY this.province, this.city"
    )
    listed = "SELECT hall_id, province, city, score, rank, grade FROM scoring.hall_grades WHERE period = '$period'"
    appeals = (
        "SELECT h.hall_id, a.aggregate_id AS rectification_order, a.occurred_at AS appealed_at"
        " FROM projections.timelines a JOIN projections.timeline_halls h ON h.aggregate_id = a.aggregate_id"
        " WHERE a.event_type = 'RectificationOrderAppealed' AND NOT EXISTS (SELECT FROM projections.timelines d"
        " WHERE d.aggregate_id = a.aggregate_id AND d.event_type = 'RectificationOrderAppealDecided')"
        " ORDER BY a.occurred_at"
    )
    period_variable: JSON = {
        "type": "query",
        "name": "period",
        "label": "Month",
        "datasource": READ_MODELS,
        "query": "SELECT DISTINCT period FROM scoring.hall_grades ORDER BY period DESC",
        "definition": "SELECT DISTINCT period FROM scoring.hall_grades ORDER BY period DESC",
        "refresh": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }
    panels = [
        row("Grade distribution (group-wide ranking, quotas applied)"),
        sql_panel("Grades by province", distribution("province")),
        sql_panel("Grades by city", distribution("province", "city")),
        row("Against last month"),
        sql_panel(
            "Grade movement by city",
            movement,
            width=WIDTH,
            description="Halls whose grade rose, fell or held against the month before; newly graded had none.",
        ),
        row("Pending decisions"),
        sql_panel(
            "Halls not assessed",
            f"{listed} AND status = 'not_assessed' ORDER BY province, city, hall_id",
            width=8,
            description="No grade: without the evidence the scoring policy asks for (e.g. an inspection).",
        ),
        sql_panel(
            "Ties at a quota boundary",
            f"{listed} AND tied_at_boundary ORDER BY rank, hall_id",
            width=8,
            description="Equal on every tie-break key where a quota ends: the campaign's reviewing level decides.",
        ),
        sql_panel(
            "Appeals pending",
            appeals,
            width=8,
            description="Halls' appeals against findings that no unit above has decided yet.",
        ),
    ]
    board = dashboard(
        "sq-grades",
        "Grades",
        "Hall grades per province and city, movement against last month, halls not assessed, ties and appeals"
        " pending; from the read models.",
        [period_variable],
        panels,
    )
    board["templating"]["list"] = [period_variable]  # one datasource: no Prometheus to choose
    return board


DASHBOARDS = {"sla-overview.json": sla_overview, "pipeline.json": pipeline, "grades.json": grades}


def render(build: Callable[[], JSON]) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Writes the Grafana dashboards from this source.")
    parser.add_argument("--check", action="store_true", help="fail if the JSON files differ from this source")
    check = parser.parse_args().check
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python deploy/grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
