"""The alerting and recording rules: valid, and each alert proven by promtool unit tests."""

from __future__ import annotations

import yaml

from tests.conftest import REPO
from tests.support.prometheus import promtool

RULES = REPO / "deploy" / "prometheus" / "voxfarm-rules.yml"
RULE_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_file() -> None:
    checked = promtool("check", "rules", str(RULES))

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    for alert in _alerts():
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels.get("severity") in {"warning", "critical"}, alert["alert"]
        for key in ("summary", "description", "runbook"):
            assert str(annotations.get(key, "")).strip(), (alert["alert"], key)


def test_promtool_unit_tests_fire_each_alert_and_keep_healthy_series_quiet() -> None:
    assert RULE_TESTS
    tested: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (tested if check.get("exp_alerts") else quiet).add(check["alertname"])

        result = promtool("test", "rules", path.name, cwd=path.parent)

        assert result.returncode == 0, result.stdout + result.stderr
    names = {str(alert["alert"]) for alert in _alerts()}
    assert tested == names, f"alerts never shown firing: {names - tested}"
    assert len(quiet) >= len(names) // 2
