"""The catalog's only Kubernetes I/O: reading and applying Backbone objects.

The client is configured as kubectl would be: $KUBECONFIG (or ~/.kube/config), else
the pod's service account. Every failure becomes a CatalogError naming the problem.
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from tailor_catalog.errors import CatalogError
from tailor_catalog.objects import backbone_object
from tailor_contract.backbones import GROUP, PLURAL, VERSION, PretrainedBackbone

FIELD_MANAGER = "tailor-models"
CRD_FILE = "crds/tailor.dev_backbones.yaml"


def connect() -> client.ApiClient:
    # Read now, not at import: the client library fixes its default when imported.
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        return config.new_client_from_config(config_file=kubeconfig)
    except (ConfigException, FileNotFoundError, TypeError) as from_file:
        try:
            config.load_incluster_config()
        except ConfigException:
            raise CatalogError(
                f"no Kubernetes cluster configured: set KUBECONFIG ({from_file})"
            ) from None
        return client.ApiClient()


@contextmanager
def _api_errors(api: client.ApiClient, doing: str) -> Iterator[None]:
    import urllib3

    try:
        yield
    except client.ApiException as error:
        if _is_missing_resource(error):
            raise CatalogError(
                f"the Backbone CRD is not installed in the cluster: kubectl apply -f {CRD_FILE}"
            ) from None
        raise CatalogError(f"{doing}: {_reason(error)}") from None
    except urllib3.exceptions.HTTPError as error:
        host = api.configuration.host
        cause = str(getattr(error, "reason", None) or error)
        errno = re.search(r"\[Errno -?\d+\] ([^\"')]+)", cause)  # e.g. Connection refused
        raise CatalogError(
            f"cannot reach the Kubernetes API server at {host}: {errno[1] if errno else cause}"
        ) from None


def _is_missing_resource(error: client.ApiException) -> bool:
    import json

    if error.status != 404:
        return False
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return True
    # A missing object names itself in details; a missing resource type does not.
    return not (body.get("details") or {}).get("name")


def _reason(error: client.ApiException) -> str:
    import json

    try:
        message = json.loads(error.body or "{}").get("message")
    except ValueError:
        message = None
    return f"HTTP {error.status}: {message or error.reason}"


def apply_backbone(api: client.ApiClient, entry: PretrainedBackbone) -> str:
    """Server-side apply of the entry's Backbone; 'created', 'updated' or 'unchanged'.

    When the spec changes, an earlier verification no longer applies: status is reset
    to unverified for the new generation (the operator verifies it again)."""
    custom = client.CustomObjectsApi(api)
    with _api_errors(api, f"cannot apply Backbone {entry.name}"):
        before = _get(custom, entry.name)
        after: dict[str, Any] = custom.patch_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            entry.name,
            backbone_object(entry),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        if before is None:
            return "created"
        generation = after["metadata"].get("generation")
        if generation == before["metadata"].get("generation"):
            return "unchanged"
        if before.get("status"):
            custom.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                PLURAL,
                entry.name,
                {
                    "status": {
                        "verified": False,
                        "verifiedAt": None,
                        "verifiedBy": None,
                        "message": "weights re-imported by tailor-models: not verified yet",
                        "observedGeneration": generation,
                    }
                },
            )
        return "updated"


def _get(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    except client.ApiException as error:
        if error.status == 404 and not _is_missing_resource(error):
            return None
        raise
    return found


def list_backbones(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every Backbone object, sorted by name."""
    custom = client.CustomObjectsApi(api)
    with _api_errors(api, "cannot list Backbones"):
        answer = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    items: list[dict[str, Any]] = answer.get("items", [])
    return sorted(items, key=lambda o: str(o["metadata"]["name"]))


def check_catalog(api: client.ApiClient) -> None:
    """Fails early, before anything is written to S3, when the cluster is unreachable,
    the CRD missing or Backbones not readable."""
    custom = client.CustomObjectsApi(api)
    with _api_errors(api, "cannot read Backbones"):
        custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
