"""The chart installed with real helm, its operator Deployment running as containers of
the operator image (`make images`) on the real node, under Pod Security `restricted`:
kopf in a container reaches the API server through the `kubernetes` Service, answers
its liveness probe, elects a worker, and reconciles a TrainingJob to a validation pod
the real kubelet tries to run; the real Prometheus scrapes every replica through the
chart's ServiceMonitor (its Service's endpoints found through the API server, as the
Prometheus Operator configures it). (The trainer image is not loaded into this node,
so the validation container itself waits: ErrImageNeverPull.)"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.waiting import eventually
from tests.chart.conftest import prometheus_operator_crds
from tests.chart.install import Release, create_restricted_namespace, installed
from tests.integration.operator.helpers import create_job, wait_pod

from .conftest import REAL_NODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.real_node,
    # The first test pays for the cluster, the real node and `helm install --wait`.
    pytest.mark.timeout(300),
]

TEAM = "team-real"


@pytest.fixture(scope="module")
def release(
    real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    workdir: Path = tmp_path_factory.mktemp("chart")
    create_restricted_namespace(real_cluster, TEAM)
    for crd in prometheus_operator_crds():  # the ServiceMonitor's kind
        real_cluster.kubectl("apply", "--server-side", "-f", str(crd))
        real_cluster.kubectl("wait", "--for=condition=Established", "-f", str(crd))
    values = {
        # Imported into containerd by the cluster; nothing can be pulled here.
        "image": {"pullPolicy": "Never"},
        "trainer": {"image": {"pullPolicy": "Never"}},
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "2s", "scrapeTimeout": "1s"}},
    }
    with installed(real_cluster, "tailor", "tailor-system", values, workdir) as installed_release:
        installed_release.team = TEAM
        assert real_cluster.prometheus is not None
        monitor = installed_release.get("servicemonitor", installed_release.fullname)
        real_cluster.prometheus.scrape_service_monitor(monitor, real_cluster.kubeconfig)
        yield installed_release


@pytest.fixture(scope="module")
def core(release: Release) -> client.CoreV1Api:
    return client.CoreV1Api(release.kube.api_client())


@pytest.fixture(scope="module")
def jobs_api(release: Release) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(release.kube.api_client())


def operator_pods(release: Release) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release.name}"
    return release.get("pods", "-l", selector)["items"]  # type: ignore[no-any-return]


def peers(release: Release) -> dict[str, Any]:
    found = release.get("clusterkopfpeering", release.fullname, namespace="")
    return found.get("status") or {}


def by_priority(release: Release) -> list[str]:
    """The replicas' pod names, the worker (highest peering priority) first."""
    found = peers(release)
    return sorted(found, key=lambda name: -found[name]["priority"])


def jobs_metric(release: Release, pod: str) -> list[str]:
    """The replica's tailor_trainingjobs lines, read inside its container (`kubectl
    exec`): only the worker counts jobs."""
    script = (
        "import urllib.request\n"
        "print(urllib.request.urlopen('http://127.0.0.1:8080/metrics').read().decode())"
    )
    out = release.kube.kubectl(
        "exec", "-n", release.namespace, pod, "--", "python3", "-c", script
    ).stdout
    return [line for line in out.splitlines() if line.startswith("tailor_trainingjobs{")]


def test_the_operator_replicas_run_as_containers_on_the_real_node(release: Release) -> None:
    pods = operator_pods(release)
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == REAL_NODE
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert "running" in status["state"]
        assert status["containerID"].startswith("containerd://")
    # Both replicas reached the API server from their containers: they are in the
    # peering object, under their pod names (POD_ID).
    registered = eventually(
        "both replicas in the peering object",
        lambda: peers(release) if len(peers(release)) == 2 else None,
        timeout=60,
    )
    assert set(registered) == {pod["metadata"]["name"] for pod in pods}


def scraped(release: Release, promql: str) -> dict[str, str]:
    """{pod: value} of an instant query over the replicas Prometheus scraped."""
    assert release.kube.prometheus is not None
    found = release.kube.prometheus.query(promql)
    return {r["metric"].get("pod", "?"): r["value"][1] for r in found}


def test_prometheus_scrapes_every_replica_through_the_charts_service_monitor(
    release: Release,
) -> None:
    pods = {pod["metadata"]["name"] for pod in operator_pods(release)}
    up = f'up{{namespace="{release.namespace}"}}'

    def both_up() -> dict[str, str] | None:
        found = scraped(release, up)
        return found if set(found) == pods and set(found.values()) == {"1"} else None

    eventually("Prometheus scraping both replicas", both_up, timeout=60, interval=1)
    # Every replica's own metrics, under the operator's namespace (theirs carry none).
    build = scraped(release, f'tailor_build_info{{namespace="{release.namespace}"}}')
    assert set(build) == pods


def test_the_containerised_operator_creates_a_validation_pod_the_kubelet_tries(
    release: Release, core: client.CoreV1Api, jobs_api: client.CustomObjectsApi
) -> None:
    create_job(jobs_api, TEAM, "in-a-container")
    pod = wait_pod(core, TEAM, "in-a-container", "validate", 1, running=False, timeout=90)
    assert pod.spec.node_name == REAL_NODE
    assert pod.spec.automount_service_account_token is False

    def waiting_reason() -> str | None:
        statuses = core.read_namespaced_pod(pod.metadata.name, TEAM).status.container_statuses
        waiting = statuses[0].state.waiting if statuses else None
        if waiting is None or waiting.reason == "ContainerCreating":
            return None
        return waiting.reason  # type: ignore[no-any-return]

    # The real kubelet's verdict on an image it does not have and may not pull.
    assert eventually("the kubelet's verdict", waiting_reason, timeout=60) == "ErrImageNeverPull"
    # The worker counted the job; the standby did nothing.
    worker, standby = by_priority(release)
    assert jobs_metric(release, worker)
    assert jobs_metric(release, standby) == []
    # Prometheus has that count under the job's own namespace (the chart's honorLabels),
    # not the operator's, which the dashboards and alerts would otherwise group by.
    counted = f'tailor_trainingjobs{{namespace="{TEAM}"}} > 0'
    found = eventually(
        "the job counted in Prometheus", lambda: scraped(release, counted), timeout=30
    )
    assert set(found) == {worker}


def test_the_standby_takes_over_when_the_worker_pod_is_deleted(
    release: Release, core: client.CoreV1Api, jobs_api: client.CustomObjectsApi
) -> None:
    worker, standby = by_priority(release)
    release.kube.kubectl("delete", "pod", "-n", release.namespace, worker, "--wait=true")
    eventually(
        "the worker gone from the peering object",
        lambda: worker not in peers(release),
        timeout=60,
    )
    create_job(jobs_api, TEAM, "after-handover")
    wait_pod(core, TEAM, "after-handover", "validate", 1, running=False, timeout=90)
    assert jobs_metric(release, standby)

    def replaced() -> bool:
        names = {pod["metadata"]["name"] for pod in operator_pods(release)}
        return len(names) == 2 and worker not in names

    # The ReplicaSet replaced the deleted pod with a new standby.
    eventually("a new replica in the deleted one's place", replaced, timeout=60)
