"""A real node (containerd, runc, the kubelet) for the tests only it can answer.

It needs root, writes machine-wide state (restored at the end) and needs images built
first, so these tests run when the Makefile has prepared them: `make test` as root (CI
runs as root) or `make test-real-node` build the node's binaries and images and set
TAILOR_REAL_NODE_TESTS=1; otherwise they are skipped, saying so.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client

from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.images import ImageBuilder

REAL_NODE = "tailor-node-0"


def real_node_tests_enabled() -> None:
    if os.environ.get("TAILOR_REAL_NODE_TESTS") != "1":
        pytest.skip(
            "real-node tests run under `make test` as root, which builds the node's binaries "
            "and images first (TAILOR_REAL_NODE_TESTS=1)"
        )
    if os.geteuid() != 0:
        pytest.skip("a real node needs root")


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The control plane, MinIO and Prometheus with one real node (`REAL_NODE`) and no
    kwok nodes."""
    real_node_tests_enabled()
    state: Path = tmp_path_factory.mktemp("realnode")
    settings = ClusterSettings(state_dir=state, gpu_nodes=0, real_nodes=1)
    with LocalCluster(settings) as cluster:
        yield cluster
    assert cluster.host_left == []


def _trainer_node(state: Path) -> ClusterSettings:
    return ClusterSettings(
        state_dir=state, gpu_nodes=0, prometheus=False, real_nodes=1, real_node_trainer=True
    )


@contextmanager
def trainer_node_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Callable[[Path], ClusterSettings] = _trainer_node,
) -> Iterator[LocalCluster]:
    """A real node with the newest trainer image loaded (skips when none was built), in
    a cluster of `settings` (by default without Prometheus); checks at the end that the
    host was put back."""
    real_node_tests_enabled()
    if ImageBuilder().newest_trainer_image() is None:
        pytest.skip("no trainer image: make trainer-image (make test as root builds it)")
    with LocalCluster(settings(tmp_path_factory.mktemp("trainer"))) as cluster:
        yield cluster
    assert cluster.host_left == []


@pytest.fixture
def real_core(real_cluster: LocalCluster) -> client.CoreV1Api:
    return client.CoreV1Api(real_cluster.api_client())


@pytest.fixture
def real_namespace(real_cluster: LocalCluster, real_core: client.CoreV1Api) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    real_cluster.create_namespace(name)
    yield name
    real_core.delete_namespace(name)
