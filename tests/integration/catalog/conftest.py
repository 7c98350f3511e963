"""The Backbone CRD from crds/, installed in the session's real API server, and the
environment `tailor-models` reads (KUBECONFIG, AWS_*)."""

from pathlib import Path

import pytest
from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.minio import S3Endpoint
from tests.integration.crds import install_crd

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "tailor.dev_backbones.yaml"


@pytest.fixture(scope="session")
def backbones(kube: LocalCluster) -> client.CustomObjectsApi:
    """The Backbone CRD, installed (or updated to this checkout's) and served."""
    return install_crd(kube, CRD_PATH)


@pytest.fixture
def catalog_env(kube: LocalCluster, s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> dict:
    """KUBECONFIG and the S3 variables, set for the in-process command; returned for
    subprocesses."""
    env = {"KUBECONFIG": str(kube.kubeconfig), **s3.environment()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
