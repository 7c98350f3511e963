"""The chart's PrometheusRule: promtool checks the rules and runs their unit tests."""

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.tools import kinds, render, run, system_binary

pytestmark = pytest.mark.integration  # helm renders the rules

ALERTS = {
    "TailorOperatorDown",
    "TailorBudgetNearlySpent",
    "TailorTrainingJobsStalled",
    "TailorRetriesPilingUp",
}


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rule groups as a Prometheus rules file, beside the unit tests."""
    objects = render(sets=("metrics.prometheusRule.enabled=true",))
    (rule,) = kinds(objects, "PrometheusRule")
    folder = tmp_path_factory.mktemp("rules")
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(Path(__file__).parent / "alerts_test.yaml", folder / "alerts_test.yaml")
    return folder


def test_the_rules_are_valid(rules_dir: Path) -> None:
    out = run([system_binary("promtool", "prometheus"), "check", "rules", rules_dir / "rules.yaml"])
    assert "SUCCESS: 4 rules found" in out


def test_every_alert_has_unit_tests(rules_dir: Path) -> None:
    groups = yaml.safe_load((rules_dir / "rules.yaml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert alerts == ALERTS
    tests = yaml.safe_load((rules_dir / "alerts_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == ALERTS


def test_the_alert_unit_tests_pass(rules_dir: Path) -> None:
    run([system_binary("promtool", "prometheus"), "test", "rules", rules_dir / "alerts_test.yaml"])
