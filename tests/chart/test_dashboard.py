"""The Grafana dashboard and the alert rules: valid JSON, PromQL that a real Prometheus
parses, and only metric names the operator exports."""

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tailor_devcluster.prometheus import PrometheusServer
from tailor_operator.metrics import Metrics
from tests.chart.tools import CHART

DASHBOARD = CHART / "files" / "tailor-dashboard.json"
RULES_TEMPLATE = CHART / "templates" / "prometheusrule.yaml"
# Grafana's variables, as Grafana would substitute them before sending a query.
GRAFANA_VARIABLES = {
    "namespace": ".*",
    "__rate_interval": "2m",
    "__range": "24h",
    "__interval": "1m",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def exported_names() -> set[str]:
    """Every series name the operator's Metrics can export."""
    registry = CollectorRegistry()
    Metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "tailor-overview"
    assert board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\b(tailor_[a-z_]+)\b", text))


def test_dashboard_and_alerts_use_only_metrics_the_operator_exports() -> None:
    exported = exported_names()
    used = referenced(DASHBOARD.read_text()) | referenced(RULES_TEMPLATE.read_text())
    assert used, "no tailor_ metric referenced"
    assert used <= exported, sorted(used - exported)


def parse_error(prometheus: PrometheusServer, expr: str) -> str | None:
    """None when Prometheus parses and evaluates `expr`; else its error."""
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    return None if body.get("status") == "success" else str(body.get("error"))


@pytest.mark.integration
def test_every_dashboard_query_parses_in_prometheus(prometheus: PrometheusServer) -> None:
    failures = {
        title: error
        for title, expr in panel_queries()
        if (error := parse_error(prometheus, substitute(expr))) is not None
    }
    assert failures == {}


@pytest.mark.integration
def test_a_broken_query_is_caught(prometheus: PrometheusServer) -> None:
    """The control: the check above does see a parse error."""
    assert parse_error(prometheus, "sum by (namespace (tailor_attempts_total)") is not None
