"""One local cluster for the end-to-end tests, built the way `make demo` builds it:
the node agent (two CPU slots) runs every pod as a real process."""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

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

log = logging.getLogger("e2e")


@pytest.fixture(scope="session")
def agent_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Control plane, MinIO, Prometheus and the node agent; no simulated nodes."""
    with LocalCluster(demo_settings(tmp_path_factory.mktemp("e2e"), agent_slots=2)) as cluster:
        yield cluster


@pytest.fixture
def agent_namespace(agent_cluster: LocalCluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    agent_cluster.create_namespace(name)
    yield name
    client.CoreV1Api(agent_cluster.api_client()).delete_namespace(name)


@dataclass(frozen=True)
class Demo:
    cluster: LocalCluster
    operator: Operator
    dataset: CocoDataset


@pytest.fixture(scope="session")
def demo(agent_cluster: LocalCluster) -> Demo:
    """The demo's stack: CRD, calibration table, operator, the digits in MinIO."""
    install_crd(agent_cluster)
    operator = start_operator(agent_cluster, install_calibration(agent_cluster))
    dataset, _, _ = upload_digits(agent_cluster)
    return Demo(agent_cluster, operator, dataset)


@pytest.fixture
def demo_namespace(demo: Demo) -> str:
    """A fresh namespace with the S3 credentials Secret (left for the cluster's end:
    deleting it would race the operator's last ledger writes)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    prepare_namespace(demo.cluster, name)
    return name
