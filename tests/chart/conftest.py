"""Fixtures for the chart tests: a control plane of their own, and the CRDs the chart needs.

The chart's operator is cluster-wide by default; on the shared `kube` cluster it would
meet the operator the other suites run, so installs happen on a cluster of their own.
"""

import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.waiting import eventually
from tests.chart.tools import CHART, ROOT

PROMETHEUS_OPERATOR_CRDS = ("servicemonitors", "prometheusrules")


def prometheus_operator_crds() -> list[Path]:
    """ServiceMonitor and PrometheusRule CRDs from the pinned Prometheus Operator module."""
    module = ROOT / "hack" / "tools" / "prometheus-operator"
    out = subprocess.run(
        ["go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator"],
        cwd=module,
        env={**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    folder = Path(json.loads(out.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [folder / f"monitoring.coreos.com_{name}.yaml" for name in PROMETHEUS_OPERATOR_CRDS]


def install_crds(cluster: LocalCluster) -> None:
    """The chart's CRDs (TrainingJob, kopf peering) and the Prometheus Operator's, established."""
    files = sorted((CHART / "crds").glob("*.yaml")) + prometheus_operator_crds()
    for path in files:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [
        d["metadata"]["name"]
        for path in files
        for d in yaml.safe_load_all(path.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    ]
    for name in names:
        wait = ("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
        eventually(
            f"CRD {name} established",
            functools.partial(_succeeds, cluster, wait),
            timeout=60,
        )


def _succeeds(cluster: LocalCluster, args: tuple[str, ...]) -> bool:
    return cluster.kubectl(*args, check=False).returncode == 0


@pytest.fixture(scope="session")
def chart_crds(kube: LocalCluster) -> LocalCluster:
    """The shared cluster with every CRD the chart's objects need."""
    install_crds(kube)
    return kube


@pytest.fixture(scope="session")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own with two kwok GPU nodes, for real installs of the chart."""
    state = tmp_path_factory.mktemp("chart-cluster")
    settings = ClusterSettings(state_dir=state, gpu_nodes=2, minio=False, prometheus=False)
    with LocalCluster(settings) as cluster:
        install_crds(cluster)
        yield cluster
