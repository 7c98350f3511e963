"""Session fixtures: the real servers integration tests run against.

Each server starts on first use and stops at the end of the session, also when
tests fail or the run is interrupted; a SIGKILLed run takes its servers along
(they die with their parent). Nothing here imitates a server.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.minio import S3Endpoint
from tailor_devcluster.prometheus import PrometheusServer


def _cluster(tmp_path_factory: pytest.TempPathFactory, name: str, **parts: bool) -> LocalCluster:
    state: Path = tmp_path_factory.mktemp(name)
    settings = ClusterSettings(
        state_dir=state,
        kubernetes=parts.get("kubernetes", False),
        minio=parts.get("minio", False),
        prometheus=parts.get("prometheus", False),
    )
    return LocalCluster(settings)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real control plane with kwok GPU nodes (`kube.gpu_nodes`)."""
    with _cluster(tmp_path_factory, "kube", kubernetes=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real MinIO server."""
    with _cluster(tmp_path_factory, "minio", minio=True) as cluster:
        assert cluster.s3 is not None
        yield cluster.s3


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus server; `prometheus.add_target(...)` makes it scrape something."""
    with _cluster(tmp_path_factory, "prometheus", prometheus=True) as cluster:
        assert cluster.prometheus is not None
        yield cluster.prometheus


@pytest.fixture
def bucket(s3: S3Endpoint) -> str:
    """A fresh, empty bucket."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def core_v1(kube: LocalCluster) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api_client())


@pytest.fixture
def namespace(kube: LocalCluster, core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists; deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    kube.create_namespace(name)
    yield name
    core_v1.delete_namespace(name)
