"""The PrometheusRule passes `promtool check rules` and its unit tests in deploy/prometheus/tests/.

The rule groups are written out of the PrometheusRule as the `rules.yml` that the unit tests name,
so the rules are tested exactly as the prometheus-operator will load them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.prometheus import PROMETHEUS_RULE
from devstack.prometheus import rule_groups as load_rule_groups
from tests.dashboard_queries import CATALOGUE, ROOT, metric_names, recorded_metrics

RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
RUNBOOKS = ROOT / "deploy" / "runbooks"
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not installed; on Debian or Ubuntu: {PROMTOOL_INSTALL}", pytrace=False)
    return path


def run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args[1:])} failed:\n{result.stdout}{result.stderr}", pytrace=False)


class _BlockStrings(yaml.SafeDumper):
    """Writes multi-line expressions as literal blocks, so promtool's messages quote them readably."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockStrings.add_representer(str, _string)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    text = yaml.dump({"groups": load_rule_groups()}, Dumper=_BlockStrings, sort_keys=False, allow_unicode=True)
    (tmp_path / "rules.yml").write_text(text, encoding="utf-8")
    for test_file in RULE_TESTS.glob("*.yml"):
        shutil.copy(test_file, tmp_path)
    return tmp_path


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in load_rule_groups() for rule in group["rules"] if "alert" in rule]


def unit_test_expectations() -> list[tuple[str, bool]]:
    """(alert name, whether it is expected to fire) for every alert_rule_test case."""
    cases = []
    for test_file in sorted(RULE_TESTS.glob("*.yml")):
        for group in yaml.safe_load(test_file.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((case["alertname"], bool(case.get("exp_alerts"))))
    return cases


def test_the_rule_file_is_one_prometheus_rule_listed_by_the_kustomization() -> None:
    documents = list(yaml.safe_load_all(PROMETHEUS_RULE.read_text(encoding="utf-8")))
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("monitoring.coreos.com/v1", "PrometheusRule")]
    kustomization = yaml.safe_load((PROMETHEUS_RULE.parent / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["resources"] == [PROMETHEUS_RULE.name]


def test_rules_pass_promtool_check(rules_dir: Path) -> None:
    run([promtool(), "check", "rules", "rules.yml"], rules_dir)


def test_alerts_fire_and_stay_quiet_as_their_unit_tests_expect(rules_dir: Path) -> None:
    test_files = sorted(path.name for path in RULE_TESTS.glob("*.yml"))
    assert test_files, f"no promtool unit tests in {RULE_TESTS}"
    run([promtool(), "test", "rules", *test_files], rules_dir)


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    tested = set(unit_test_expectations())
    untested = [
        f"{rule['alert']} ({'firing' if fires else 'not firing'})"
        for rule in alerting_rules()
        for fires in (True, False)
        if (rule["alert"], fires) not in tested
    ]
    assert untested == []


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_hint() -> None:
    for rule in alerting_rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert {"summary", "description", "runbook", "runbook_url"} <= rule["annotations"].keys(), rule["alert"]


def test_every_alert_links_its_own_runbook_and_every_runbook_has_its_alert() -> None:
    alerts = {rule["alert"] for rule in alerting_rules()}
    for rule in alerting_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith(f"/deploy/runbooks/{rule['alert']}.md"), rule["alert"]
        runbook = RUNBOOKS / f"{rule['alert']}.md"
        assert runbook.read_text(encoding="utf-8").startswith(f"# {rule['alert']}\n"), rule["alert"]
    assert {path.stem for path in RUNBOOKS.glob("*.md")} - {"README"} == alerts


def test_rules_use_only_catalogued_metrics_and_recording_rules() -> None:
    known = CATALOGUE | recorded_metrics()
    unknown = {
        (rule.get("record") or rule["alert"], name)
        for group in load_rule_groups()
        for rule in group["rules"]
        for name in metric_names(str(rule["expr"]))
        if name not in known
    }
    assert unknown == set()
