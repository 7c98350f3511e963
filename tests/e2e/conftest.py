"""One local cluster for the end-to-end tests, built the way `make demo` builds it: a
real node (containerd, runc and the kubelet, two CPU-backed GPU slots) runs every pod
as a container of the trainer image. It needs root and the trainer image, which
`make test` as root prepares; otherwise these tests are skipped, saying so."""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.demo.digits import CocoDataset
from tailor_devcluster.demo.stack import (
    Operator,
    demo_settings,
    install_calibration,
    install_crd,
    prepare_namespace,
    start_operator,
    upload_digits,
)
from tests.integration.realnode.conftest import trainer_node_cluster

log = logging.getLogger("e2e")
# The node's CPU-backed GPU slots: two trials at once.
SLOTS = 2


# Package scope: the real node must be gone before tests/integration/realnode starts
# its own (the bridge holds one real node at a time).
@pytest.fixture(scope="package")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Control plane, MinIO, Prometheus and a real node with the trainer image; no
    simulated nodes. Checks at the end that the machine was put back."""
    with trainer_node_cluster(tmp_path_factory, lambda state: demo_settings(state, SLOTS)) as up:
        yield up


@dataclass(frozen=True)
class Demo:
    cluster: LocalCluster
    operator: Operator
    dataset: CocoDataset


@pytest.fixture(scope="package")
def demo(node_cluster: LocalCluster) -> Demo:
    """The demo's stack: CRD, calibration table, operator, the digits in MinIO."""
    install_crd(node_cluster)
    operator = start_operator(node_cluster, install_calibration(node_cluster))
    dataset, _, _ = upload_digits(node_cluster)
    return Demo(node_cluster, operator, dataset)


@pytest.fixture
def demo_namespace(demo: Demo) -> str:
    """A fresh namespace with the S3 credentials Secret (left for the cluster's end:
    deleting it would race the operator's last ledger writes)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    prepare_namespace(demo.cluster, name)
    return name
