"""Checks of the chart's files that need no tool: every operator setting reachable
from values, and the kind cluster the install guide names."""

import re

import yaml

from tests.chart.tools import CHART, ROOT

# Settings the chart deliberately leaves to the operator.
NOT_FROM_VALUES = {"PEERING_PRIORITY"}  # each replica derives its own from its start time


def test_every_operator_setting_can_be_set_through_the_chart() -> None:
    source = (ROOT / "operator" / "tailor_operator" / "settings.py").read_text()
    settings = set(re.findall(r'_(?:read|allow_list)\(\s*env,\s*"([A-Z_]+)"', source))
    assert len(settings) > 20, "the settings were not found"
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    in_chart = {s for s in settings if f'"{s}"' in deployment or f"TAILOR_{s}" in deployment}
    assert settings - in_chart == NOT_FROM_VALUES


def test_the_kind_cluster_matches_the_install_guide() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert (config["apiVersion"], config["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker"]
    guide = (ROOT / "docs" / "install.md").read_text()
    # kind names nodes <cluster>-<role>; the guide patches the worker by name.
    assert f"--name {config['name']}" in guide
    assert f"node {config['name']}-worker" in guide
    worker = config["nodes"][1]
    for key, value in worker["labels"].items():
        assert re.fullmatch(r"([a-z0-9.-]+/)?[A-Za-z0-9._-]{1,63}", key), key
        assert re.fullmatch(r"[A-Za-z0-9._-]{0,63}", str(value)), value
