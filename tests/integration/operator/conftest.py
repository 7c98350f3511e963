"""Fixtures for the operator's integration tests: the CRD, a calibration table, the operator."""

from collections.abc import Iterator

import pytest
from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tests.integration.crds import install_crd
from tests.integration.operator.process import OperatorProcess
from tests.unit.operator.crd import CRD_PATH

GROUP, VERSION, PLURAL = "tailor.dev", "v1alpha1", "trainingjobs"


@pytest.fixture(scope="session")
def trainingjobs(kube: LocalCluster) -> client.CustomObjectsApi:
    """The TrainingJob CRD from crds/, installed and served."""
    return install_crd(kube, CRD_PATH)


CALIBRATION_NAMESPACE = "tailor-system"
CALIBRATION_NAME = "tailor-calibration"
A100 = "NVIDIA-A100-SXM4-80GB"
A100_FACTOR = 1.5  # not 1.0, so a test can see the factor applied
DEFAULT_FACTOR = 1.0  # other products (the cluster also has H100 nodes)
FACTORS = {A100: A100_FACTOR}


@pytest.fixture(scope="session")
def calibration(kube: LocalCluster) -> str:
    core = client.CoreV1Api(kube.api_client())
    try:
        kube.create_namespace(CALIBRATION_NAMESPACE)
    except client.ApiException as error:
        if error.status != 409:
            raise
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=CALIBRATION_NAME),
        data={"version": "test-1", "default": str(DEFAULT_FACTOR), A100: str(A100_FACTOR)},
    )
    try:
        core.create_namespaced_config_map(CALIBRATION_NAMESPACE, body)
    except client.ApiException as error:
        if error.status != 409:
            raise
    return f"{CALIBRATION_NAMESPACE}/{CALIBRATION_NAME}"


@pytest.fixture(scope="session")
def operator(
    kube: LocalCluster, trainingjobs, calibration: str, tmp_path_factory
) -> Iterator[OperatorProcess]:
    """The operator, running as its own process against the local cluster."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kube.kubeconfig, log, calibration)
    process.start()
    yield process
    process.stop()
