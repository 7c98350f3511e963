"""What Argo CD, kstatus and Flux read from TrainingJobs in every state.

The inputs are hack/argocd/tailor.dev/TrainingJob/testdata/: statuses the operator
wrote (captured from test_install.py's run), in Argo CD's layout. test_install.py
checks the same readings on live objects.
"""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailor_devcluster.cluster import LocalCluster
from tests.chart.argocd import HEALTH_LUA, health
from tests.chart.tools import ARGOCD_CHECK, ROOT, flux_health_check, kstatus

CASES = yaml.safe_load((ARGOCD_CHECK / "health_test.yaml").read_text())["tests"]


def load(path: str) -> dict[str, Any]:
    return yaml.safe_load((ARGOCD_CHECK / path).read_text())  # type: ignore[no-any-return]


def test_every_testdata_file_has_a_case() -> None:
    files = {f"testdata/{p.name}" for p in (ARGOCD_CHECK / "testdata").glob("*.yaml")}
    assert files == {case["inputPath"] for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_argocd_health_check(case: dict[str, Any]) -> None:
    expected = case["healthStatus"]
    assert health(load(case["inputPath"])) == (expected["status"], expected["message"])


def test_argocd_health_check_survives_foreign_conditions_and_no_message() -> None:
    job = load("testdata/succeeded.yaml")
    job["status"]["conditions"].insert(0, {"type": "PolicyChecked", "status": "True"})
    for condition in job["status"]["conditions"]:
        condition.pop("message", None)
    assert health(job) == ("Healthy", "Converged")


# file -> (kstatus, Flux CEL check) for each state; None: not asserted here.
READINGS = {
    "validating": ("InProgress", "InProgress"),
    "generation-not-observed": ("InProgress", "InProgress"),
    "succeeded": ("Current", "Current"),
    "failed-dataset-not-found": ("Failed", "Failed"),
    "stalled-invalid-spec": ("Failed", "Failed"),
    "no-status": (None, "Error"),  # Flux waits (Unknown); kstatus reads Current (documented)
}

integration = pytest.mark.integration  # the kstatus tool is built from hack/tools/kstatus


def readings() -> dict[str, dict[str, Any]]:
    files = sorted((ARGOCD_CHECK / "testdata").glob("*.yaml"))
    lines = kstatus([yaml.safe_load(p.read_text()) for p in files])
    return {p.stem: line for p, line in zip(files, lines, strict=True)}


@integration
def test_kstatus_and_the_flux_check_read_every_state() -> None:
    found = readings()
    assert set(found) == set(READINGS)
    for name, (expected_kstatus, expected_cel) in READINGS.items():
        if expected_kstatus is not None:
            assert found[name]["sigs"]["status"] == expected_kstatus, (name, found[name])
            assert found[name]["flux"]["status"] == expected_kstatus, (name, found[name])
        assert found[name]["cel"]["status"] == expected_cel, (name, found[name])
    assert "status.conditions" in found["no-status"]["cel"]["message"]


@integration
def test_kstatus_reads_a_stuck_job_as_failed() -> None:
    stuck = readings()["stalled-invalid-spec"]
    assert stuck["sigs"]["status"] == "Failed"
    assert stuck["flux"]["status"] == "Failed"


def test_the_documented_flux_check_is_the_tested_one() -> None:
    check = flux_health_check()
    assert (check["apiVersion"], check["kind"]) == ("tailor.dev/v1alpha1", "TrainingJob")
    assert {"current", "failed"} <= check.keys()


@integration
def test_the_documented_argocd_install_command_sets_only_its_key(kube: LocalCluster) -> None:
    """Runs docs/gitops.md's command against an existing argocd-cm: it adds the check
    and leaves the other keys alone."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    (command,) = [
        b for b in re.findall(r"```sh\n(.*?)```", docs, flags=re.DOTALL) if "argocd-cm" in b
    ]
    kube.kubectl("create", "namespace", "argocd", check=False)
    kube.kubectl(
        "create", "configmap", "argocd-cm", "-n", "argocd", "--from-literal=url=https://argo",
        check=False,
    )  # fmt: skip
    assert kube.binaries is not None
    env = {
        **os.environ,
        "PATH": f"{kube.binaries.kubectl.parent}:{os.environ['PATH']}",
        "KUBECONFIG": str(kube.kubeconfig),
    }
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=ROOT, env=env, check=True, timeout=60
    )
    found = kube.kubectl("-n", "argocd", "get", "configmap", "argocd-cm", "-o", "yaml").stdout
    data = yaml.safe_load(found)["data"]
    assert data["url"] == "https://argo"
    assert data["resource.customizations.health.tailor.dev_TrainingJob"] == HEALTH_LUA.read_text()
