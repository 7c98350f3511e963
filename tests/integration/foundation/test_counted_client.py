"""A client identity whose API requests the API server counts apart."""

import uuid

import pytest
from kubernetes import client, config

from tailor_devcluster.counting import counted_client, dispatched_requests

pytestmark = pytest.mark.integration


def test_requests_of_the_counted_client_alone_are_counted(kube, namespace, tmp_path):
    admin = kube.api_client()
    assert kube.plane is not None
    name = f"counted-{uuid.uuid4().hex[:8]}"
    counted = counted_client(
        admin, kube.plane.server, kube.plane.pki.ca_cert, (namespace, name), tmp_path / "kc"
    )
    own = client.CoreV1Api(config.new_client_from_config(config_file=str(counted.kubeconfig)))
    before = dispatched_requests(admin, counted.flow_schema)
    for _ in range(3):
        own.list_namespaced_config_map(namespace)
    client.CoreV1Api(admin).list_namespaced_config_map(namespace)  # the admin: not counted
    assert dispatched_requests(admin, counted.flow_schema) - before == 3
