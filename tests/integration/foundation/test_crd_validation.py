"""The API server enforces a CRD's schema, defaults, CEL rules and status subresource."""

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tailor_devcluster.waiting import eventually

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "foundation.test.tailor.dev", "v1", "gadgets"

CRD = yaml.safe_load(f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {PLURAL}.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: {PLURAL}, singular: gadget, kind: Gadget}}
  versions:
  - name: {VERSION}
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.maxReplicas"
              message: "spec.minReplicas must not exceed spec.maxReplicas"
              fieldPath: .minReplicas
            properties:
              minReplicas: {{type: integer, default: 1}}
              maxReplicas: {{type: integer, default: 4}}
          status:
            type: object
            properties:
              phase: {{type: string}}
""")


@pytest.fixture(scope="module")
def gadgets(kube):
    extensions = client.ApiextensionsV1Api(kube.api_client())
    extensions.create_custom_resource_definition(CRD)
    eventually(
        "CRD Established",
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition(
                f"{PLURAL}.{GROUP}"
            ).status.conditions
            or []
        ),
    )
    api = client.CustomObjectsApi(kube.api_client())
    # Discovery can lag Established by a moment.
    eventually(
        "gadgets served", lambda: api.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None
    )
    yield api
    extensions.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")


def gadget(name: str, spec: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_defaults_are_applied_by_the_server(gadgets, namespace):
    created = gadgets.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gadget("g", {})
    )
    assert created["spec"] == {"minReplicas": 1, "maxReplicas": 4}


def test_cel_rule_rejects_an_invalid_object_with_its_message(gadgets, namespace):
    with pytest.raises(ApiException) as refused:
        gadgets.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, gadget("bad", {"minReplicas": 5, "maxReplicas": 2})
        )
    assert refused.value.status == 422
    assert "spec.minReplicas must not exceed spec.maxReplicas" in refused.value.body
    assert "spec.minReplicas" in refused.value.body


def test_schema_rejects_a_wrong_type(gadgets, namespace):
    with pytest.raises(ApiException) as refused:
        gadgets.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, gadget("typo", {"minReplicas": "three"})
        )
    assert refused.value.status == 422
    assert "spec.minReplicas" in refused.value.body


def test_status_is_a_subresource(gadgets, namespace):
    gadgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, gadget("s", {}))
    # Through the main resource, status is ignored ...
    gadgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "s", {"status": {"phase": "Ignored"}}
    )
    assert "status" not in gadgets.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "s"
    )
    # ... and written only through /status, which leaves the generation alone.
    before = gadgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "s")
    gadgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "s", {"status": {"phase": "Running"}}
    )
    after = gadgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "s")
    assert after["status"] == {"phase": "Running"}
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_stale_resource_version_is_refused(gadgets, namespace):
    created = gadgets.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gadget("c", {})
    )
    stale = created["metadata"]["resourceVersion"]
    gadgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "c", {"spec": {"maxReplicas": 8}}
    )
    guarded = {"metadata": {"resourceVersion": stale}, "status": {"phase": "Late"}}
    with pytest.raises(ApiException) as conflict:
        gadgets.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "c", guarded
        )
    assert conflict.value.status == 409
