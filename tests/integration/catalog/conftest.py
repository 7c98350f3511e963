"""The Backbone CRD from crds/, installed in the session's real API server, and the
environment `tailor-models` reads (KUBECONFIG, AWS_*)."""

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tailor_contract.backbones import GROUP, PLURAL, VERSION
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.minio import S3Endpoint
from tailor_devcluster.waiting import eventually

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "tailor.dev_backbones.yaml"


@pytest.fixture(scope="session")
def backbones(kube: LocalCluster) -> client.CustomObjectsApi:
    """The Backbone CRD, installed (or updated to this checkout's) and served."""
    crd = yaml.safe_load(CRD_PATH.read_text())
    extensions = client.ApiextensionsV1Api(kube.api_client())
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)
    except client.ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, crd)

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually("Backbone CRD established", established)
    api = client.CustomObjectsApi(kube.api_client())
    eventually(
        "backbones served",
        lambda: api.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None,
    )
    return api


@pytest.fixture
def catalog_env(kube: LocalCluster, s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> dict:
    """KUBECONFIG and the S3 variables, set for the in-process command; returned for
    subprocesses."""
    env = {"KUBECONFIG": str(kube.kubeconfig), **s3.environment()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
