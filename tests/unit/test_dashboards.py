"""The Grafana dashboards are current with their generator, well formed, and query only known metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboard_queries import (
    CATALOGUE,
    DASHBOARDS,
    ROOT,
    dashboard_files,
    dashboard_queries,
    metric_names,
    recorded_metrics,
)

GENERATOR = DASHBOARDS.parent / "generate.py"
EXPECTED = {"SLA overview", "Pipeline", "Grades"}
READ_MODELS = {"type": "postgres", "uid": "read-models"}


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in dashboard_files()]


def test_the_json_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_there_are_sla_overview_pipeline_and_grades_dashboards_with_distinct_uids() -> None:
    boards = dashboards()
    assert {board["title"] for board in boards} == EXPECTED
    assert len({board["uid"] for board in boards}) == len(boards)


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_panel_ids_are_unique_and_every_panel_queries_prometheus_or_the_read_models(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    sql = path.name == "grades.json"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        field = "rawSql" if sql else "expr"
        assert all(target.get(field, "").strip() for target in panel["targets"]), panel["title"]
        expected = READ_MODELS if sql else {"type": "prometheus", "uid": "${datasource}"}
        assert panel["datasource"] == expected, panel["title"]


def test_every_query_uses_only_catalogued_metrics_and_recording_rules() -> None:
    known = CATALOGUE | recorded_metrics()
    unknown = {
        (query.dashboard, query.panel, name)
        for query in dashboard_queries()
        for name in metric_names(query.expr)
        if name not in known
    }
    assert unknown == set()


def test_queries_have_every_grafana_variable_substituted() -> None:
    queries = dashboard_queries()
    assert len(queries) > 20
    assert [query for query in queries if "$" in query.expr or "[[" in query.expr] == []


def test_metric_names_are_told_apart_from_functions_labels_and_durations() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, priority) (rate(a_bucket{sla="x y"}[5m] offset 1h)))'
        " / on (slo) group_left () slo:b:ratio_rate1h or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "slo:b:ratio_rate1h"}


def test_the_datasource_provisioning_has_the_uids_the_dashboards_use() -> None:
    sources = DASHBOARDS.parent / "provisioning/datasources"
    assert [s["uid"] for s in yaml.safe_load((sources / "prometheus.yaml").read_text())["datasources"]] == [
        "prometheus"
    ]
    [read_models] = yaml.safe_load((sources / "read-models.yaml").read_text())["datasources"]
    assert (read_models["type"], read_models["uid"]) == (READ_MODELS["type"], READ_MODELS["uid"])
    for board in dashboards():
        if board["title"] == "Grades":
            continue
        variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == "prometheus"


def test_the_kustomization_makes_one_sidecar_config_map_per_dashboard() -> None:
    kustomization = yaml.safe_load((DASHBOARDS.parent / "kustomization.yaml").read_text())
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    assert kustomization["generatorOptions"]["labels"]["grafana_dashboard"] == "1"
    files = sorted(re.sub(r"^dashboards/", "", f) for m in kustomization["configMapGenerator"] for f in m["files"])
    assert files == sorted(path.name for path in dashboard_files())
