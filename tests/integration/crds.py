"""Installing one of crds/ in the session's real API server, for the fixtures."""

from pathlib import Path

import yaml
from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.waiting import eventually


def install_crd(kube: LocalCluster, path: Path) -> client.CustomObjectsApi:
    """The CRD at `path`, installed (or updated to this checkout's), established and
    served; returns a client for its objects."""
    crd = yaml.safe_load(path.read_text())
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

    eventually(f"CRD {name} established", established)
    api = client.CustomObjectsApi(kube.api_client())
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    version = crd["spec"]["versions"][0]["name"]
    eventually(
        f"{plural} served",
        lambda: api.list_cluster_custom_object(group, version, plural) is not None,
    )
    return api
