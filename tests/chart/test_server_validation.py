"""The rendered chart and the examples, validated by the real API server (dry run).

`kubectl apply --dry-run=server` runs every object through the API server's schema
validation (strict: unknown fields are errors), the CRDs' schemas and CEL rules, and
admission, without persisting anything.
"""

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tailor_operator.core.calibration import parse_calibration
from tests.chart.tools import CHART, ROOT, VALUES, helm

pytestmark = pytest.mark.integration

VALUE_FILES = sorted(VALUES.glob("*.yaml"))
EXAMPLES = ROOT / "examples"


def ensure_namespace(kube: LocalCluster, name: str) -> None:
    try:
        kube.create_namespace(name)
    except client.ApiException as error:
        if error.status != 409:
            raise


def dry_run(kube: LocalCluster, manifest: str, namespace: str | None = None) -> str:
    where = ["-n", namespace] if namespace else []
    result = kube.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        *where,
        "-f",
        "-",
        stdin=manifest,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("values", VALUE_FILES, ids=[p.stem for p in VALUE_FILES])
def test_every_rendered_object_is_accepted_by_the_api_server(
    chart_crds: LocalCluster, values: Path
) -> None:
    release_namespace = f"chart-{uuid.uuid4().hex[:8]}"
    ensure_namespace(chart_crds, release_namespace)
    for watched in (yaml.safe_load(values.read_text()) or {}).get("watchNamespaces", []):
        ensure_namespace(chart_crds, watched)
    manifest = helm("template", "tailor", CHART, "-n", release_namespace, "--values", values)
    # Every namespaced object names its namespace, so none is passed here.
    out = dry_run(chart_crds, manifest)
    created = [line for line in out.splitlines() if "(server dry run)" in line]
    rendered = [d for d in yaml.safe_load_all(manifest) if d]
    assert len(created) == len(rendered), out


def test_the_chart_crds_are_accepted_by_the_api_server(chart_crds: LocalCluster) -> None:
    for path in sorted((CHART / "crds").glob("*.yaml")):
        dry_run(chart_crds, path.read_text())


@pytest.mark.parametrize(
    "example",
    [
        "classification.yaml",
        "multilabel.yaml",
        "detection.yaml",
        "s3-credentials.yaml",
        "demo-digits.yaml",
        "digits-one-trial.yaml",
    ],
)
def test_examples_are_accepted_by_the_api_server(
    chart_crds: LocalCluster, namespace: str, example: str
) -> None:
    out = dry_run(chart_crds, (EXAMPLES / example).read_text(), namespace)
    assert "created (server dry run)" in out


def test_the_example_calibration_table_is_accepted_and_parses(chart_crds: LocalCluster) -> None:
    text = (EXAMPLES / "calibration.yaml").read_text()
    table = yaml.safe_load(text)
    ensure_namespace(chart_crds, table["metadata"]["namespace"])
    dry_run(chart_crds, text, table["metadata"]["namespace"])
    parsed = parse_calibration(table["data"], "rv")
    assert parsed.version == table["data"]["version"]
    assert parsed.factor_for("NVIDIA-H100-80GB-HBM3") == 2.2


def test_a_broken_example_would_be_refused(chart_crds: LocalCluster, namespace: str) -> None:
    """The dry run really validates: the classification example with a bad budget fails."""
    job = yaml.safe_load((EXAMPLES / "classification.yaml").read_text())
    job["spec"]["budget"]["gpuHours"] = "-1"
    result = chart_crds.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(job),
        check=False,
    )
    assert result.returncode != 0
    assert "spec.budget.gpuHours" in result.stderr
