"""The chart installed with real helm into a local control plane, and its operator run
with exactly the ServiceAccount the chart creates.

The Deployment's pods are created by the ReplicaSet controller and admitted (or not)
by Pod Security admission in a namespace labelled `enforce=restricted`; they land on
kwok nodes, which run nothing. The operator itself runs as local processes, one per
replica, each with the installed Deployment's environment and a token of the chart's
ServiceAccount: a permission the chart forgot is a 403 here.
"""

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_contract import AttemptResult
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.kwokctl import finish_pod
from tailor_devcluster.waiting import eventually
from tests.chart.argocd import health
from tests.chart.install import RESTRICTED, Release, create_restricted_namespace, installed
from tests.chart.tools import kstatus
from tests.integration.operator.helpers import (
    create_job,
    pass_validation,
    trial_result,
    wait_condition,
    wait_pod,
)
from tests.integration.operator.process import OperatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Each mode has a team namespace of its own: the pods left behind keep their ledger
# finalizer once the operator is gone, so a namespace is never reused.
MODES = {
    "cluster-wide": ("team-cw", {}),
    "namespaced": ("team-ns", {"watchNamespaces": ["team-ns"]}),
}
RELEASE_NAMESPACE = "tailor-ops"  # test_install_docs.py uses tailor-system


@pytest.fixture(scope="module", params=list(MODES), ids=list(MODES))
def release(
    request: pytest.FixtureRequest, chart_cluster: LocalCluster, tmp_path_factory
) -> Iterator[Release]:
    workdir: Path = tmp_path_factory.mktemp(f"release-{request.param}")
    team, values = MODES[request.param]
    create_restricted_namespace(chart_cluster, team)  # trial pods meet the profile too
    with installed(chart_cluster, "tailor", RELEASE_NAMESPACE, values, workdir) as rel:
        rel.team = team
        yield rel


@pytest.fixture(scope="module")
def replicas(release: Release) -> tuple[OperatorProcess, OperatorProcess]:
    """Two replicas; the first started is the older, so it works and the second waits."""
    return release.start_operator("replica-a"), release.start_operator("replica-b")


@pytest.fixture(scope="module")
def jobs_api(release: Release) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(release.kube.api_client())


@pytest.fixture(scope="module")
def core(release: Release) -> client.CoreV1Api:
    return client.CoreV1Api(release.kube.api_client())


def test_the_operator_pods_are_admitted_under_the_restricted_profile_on_simulated_nodes(
    release: Release,
) -> None:
    namespace = release.get("namespace", release.namespace, namespace="")
    assert RESTRICTED.items() <= namespace["metadata"]["labels"].items()
    deployment = release.get("deployment", release.fullname)
    # kwok's simulated kubelet reports the pods ready: this proves admission and
    # scheduling, not that the image (never built here) runs.
    assert deployment["status"].get("readyReplicas") == 2
    pods = release.get("pods", "-l", f"app.kubernetes.io/instance={release.name}")["items"]
    assert len(pods) == 2
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
    replica_sets = release.get("replicasets")["items"]
    for replica_set in replica_sets:
        failures = [
            c for c in replica_set["status"].get("conditions", []) if c["type"] == "ReplicaFailure"
        ]
        assert failures == [], failures


def test_admission_really_enforces_the_restricted_profile(release: Release) -> None:
    """The control: the same pod without its securityContext is refused in that namespace."""
    template = release.get("deployment", release.fullname)["spec"]["template"]
    template["spec"].pop("securityContext")
    for container in template["spec"]["containers"]:
        container.pop("securityContext")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unrestricted", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    result = release.kube.kubectl(
        "create", "--dry-run=server", "-n", release.namespace, "-f", "-",
        stdin=json.dumps(pod), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr


def metric_lines(process: OperatorProcess, name: str) -> list[str]:
    return [line for line in process.metrics().splitlines() if line.startswith(name + "{")]


def test_one_replica_works_and_the_other_stands_by(
    release: Release, replicas: tuple[OperatorProcess, OperatorProcess], jobs_api, core
) -> None:
    worker, standby = replicas
    peering_kind = "kopfpeering" if release.values.get("watchNamespaces") else "clusterkopfpeering"
    where = release.team if peering_kind == "kopfpeering" else ""

    def both_registered() -> dict[str, Any] | None:
        status = release.get(peering_kind, release.fullname, namespace=where).get("status", {})
        return status if {"replica-a", "replica-b"} <= status.keys() else None

    peers = eventually("both replicas in the peering object", both_registered, timeout=30)
    assert peers["replica-a"]["priority"] > peers["replica-b"]["priority"]
    create_job(jobs_api, release.team, "working")
    wait_pod(core, release.team, "working", "validate", 1)
    assert metric_lines(worker, "tailor_trainingjobs")
    assert metric_lines(standby, "tailor_trainingjobs") == []
    assert "Resuming operations" not in standby.log_tail(200)


STATES = {
    # job -> (kstatus, Flux's CEL check from docs/gitops.md, Argo CD health).
    "working": ("InProgress", "InProgress", "Progressing"),
    "failed": ("Failed", "Failed", "Degraded"),
    "succeeded": ("Current", "Current", "Healthy"),
    "invalid": ("Failed", "Failed", "Degraded"),
}


def drive_jobs_to_every_state(jobs_api, core, team: str) -> None:
    create_job(jobs_api, team, "failed")
    pod = wait_pod(core, team, "failed", "validate", 1)
    missing = AttemptResult(
        exit="DATASET_NOT_FOUND", reason="s3://datasets/flowers/train.json: NoSuchKey"
    )
    finish_pod(core, team, pod.metadata.name, 66, message=missing.to_termination_message())
    create_job(jobs_api, team, "succeeded", search={"models": ["resnet18"]})
    pass_validation(core, team, "succeeded")
    trial = wait_pod(core, team, "succeeded", "t0", 1)
    finish_pod(core, team, trial.metadata.name, 0, message=trial_result(top1=0.9))
    create_job(
        jobs_api,
        team,
        "invalid",
        search={"trials": [{"model": "resnet18", "hyperparameters": {"lr": -1}}]},
    )
    wait_condition(jobs_api, team, "failed", "Failed")
    wait_condition(jobs_api, team, "succeeded", "Succeeded")
    wait_condition(jobs_api, team, "invalid", "Stalled")


def test_kstatus_and_argocd_read_every_state(release: Release, replicas, jobs_api, core) -> None:
    drive_jobs_to_every_state(jobs_api, core, release.team)
    live = {
        j["metadata"]["name"]: j
        for j in release.get("trainingjobs", namespace=release.team)["items"]
    }
    readings = {r["name"]: r for r in kstatus(list(live.values()))}
    for name, (expected_kstatus, expected_cel, expected_health) in STATES.items():
        reading = readings[name]
        if expected_kstatus is not None:
            assert reading["sigs"]["status"] == expected_kstatus, (name, reading)
            assert reading["flux"]["status"] == expected_kstatus, (name, reading)
        assert reading["cel"]["status"] == expected_cel, (name, reading)
        assert health(live[name])[0] == expected_health, (name, live[name]["status"])
    assert health(live["failed"])[1].startswith("DatasetNotFound")
    assert "lr" in health(live["invalid"])[1]


def test_the_standby_takes_over_when_the_worker_stops(
    release: Release, replicas: tuple[OperatorProcess, OperatorProcess], jobs_api, core
) -> None:
    worker, standby = replicas
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)  # as a rollout or a drain would
    worker.process.wait(30)
    eventually(
        "the standby resuming", lambda: "Resuming operations" in standby.log_tail(200), timeout=60
    )
    create_job(jobs_api, release.team, "after-handover")
    wait_pod(core, release.team, "after-handover", "validate", 1, timeout=60)
    assert metric_lines(standby, "tailor_trainingjobs")


def test_uninstall_removes_everything_but_the_crds(
    release: Release, chart_cluster: LocalCluster, tmp_path: Path
) -> None:
    """A second, short-lived release: gone without a trace, the shared CRDs stay."""
    with installed(chart_cluster, "short", "short-lived", {"replicaCount": 1}, tmp_path) as rel:
        assert rel.get("clusterrole", "short-tailor", namespace="")
    leftovers = chart_cluster.kubectl(
        "get", "clusterrole,clusterrolebinding,clusterkopfpeering", "-o", "name"
    ).stdout
    assert "short-tailor" not in leftovers
    assert (
        chart_cluster.kubectl("get", "deployments", "-n", "short-lived", "-o", "name").stdout == ""
    )
    crds = chart_cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "trainingjobs.tailor.dev" in crds
    assert "clusterkopfpeerings.kopf.dev" in crds
