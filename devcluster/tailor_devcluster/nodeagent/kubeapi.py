"""Every API call the node agent makes, and nothing else.

Objects come back as the API server's JSON (camelCase dicts), which is what the
pure modules of the agent read.
"""

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config

LEASE_NAMESPACE = "kube-node-lease"


def api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def _json(response: Any) -> Any:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def _done(response: Any) -> None:
    """Read the body before the connection goes back to the pool: an unread body
    breaks the next request on that connection."""
    try:
        _ = response.data
    finally:
        response.release_conn()


def _micro_time(moment: datetime) -> str:
    # Leases carry MicroTime: the controller compares renewals to the microsecond.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeApi:
    """The agent's view of the API server: its Node, its Lease, its pods."""

    def __init__(self, api_client: client.ApiClient, node_name: str) -> None:
        self.node_name = node_name
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    # -- the node ------------------------------------------------------------------

    def register(self, manifest: dict[str, Any]) -> None:
        """Creates the Node, or takes over one of the same name (an agent restarted)."""
        try:
            _done(self.core.create_node(manifest, _preload_content=False))
            return
        except client.ApiException as error:
            if error.status != 409:
                raise
        self.core.patch_node(
            self.node_name, {"metadata": {"labels": manifest["metadata"]["labels"]}}
        )
        self.update_node_status(manifest["status"])

    def update_node_status(self, status: Mapping[str, Any]) -> None:
        _done(
            self.core.patch_node_status(
                self.node_name, {"status": dict(status)}, _preload_content=False
            )
        )

    def renew_lease(self, duration_seconds: int, now: datetime) -> None:
        """The heartbeat the node lifecycle controller watches (kube-node-lease)."""
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": _micro_time(now),
        }
        try:
            _done(
                self.coordination.patch_namespaced_lease(
                    self.node_name, LEASE_NAMESPACE, {"spec": spec}, _preload_content=False
                )
            )
            return
        except client.ApiException as error:
            if error.status != 404:
                raise
        node = self.core.read_node(self.node_name)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": LEASE_NAMESPACE,
                # Owned by the Node, as the kubelet does: the lease goes when the node goes.
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.node_name,
                        "uid": node.metadata.uid,
                    }
                ],
            },
            "spec": {**spec, "acquireTime": _micro_time(now)},
        }
        _done(
            self.coordination.create_namespaced_lease(LEASE_NAMESPACE, body, _preload_content=False)
        )

    # -- pods ----------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        """Every pod bound to this node, in every namespace."""
        response = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node_name}", _preload_content=False
        )
        items: list[dict[str, Any]] = _json(response).get("items", [])
        return items

    def patch_pod_status(self, pod: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
        """False when the pod is gone (nothing left to report to)."""
        metadata = pod["metadata"]
        try:
            _done(
                self.core.patch_namespaced_pod_status(
                    metadata["name"],
                    metadata["namespace"],
                    {"metadata": {"uid": metadata["uid"]}, "status": dict(status)},
                    _preload_content=False,
                )
            )
        except client.ApiException as error:
            if error.status in (404, 409, 422):  # gone, or another pod of the same name
                return False
            raise
        return True

    def finish_deletion(self, pod: Mapping[str, Any]) -> None:
        """What the kubelet does once a deleted pod's containers are gone: delete it
        with grace period 0. Finalizers (the operator's ledger) still hold it until
        their owners remove them; the agent never touches them."""
        metadata = pod["metadata"]
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=metadata["uid"])
        )
        try:
            _done(
                self.core.delete_namespaced_pod(
                    metadata["name"], metadata["namespace"], body=body, _preload_content=False
                )
            )
        except client.ApiException as error:
            if error.status not in (404, 409):
                raise

    # -- what pods refer to (the Lookups of env and mounts) ------------------------

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("secrets", namespace, name)
        if found is None:
            return None
        data = found.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("configmaps", namespace, name)
        return None if found is None else dict(found.get("data") or {})

    def token(
        self, namespace: str, service_account: str, audience: str | None, seconds: int
    ) -> str:
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audience:
            spec["audiences"] = [audience]
        response = self.core.create_namespaced_service_account_token(
            service_account, namespace, {"spec": spec}, _preload_content=False
        )
        return str(_json(response)["status"]["token"])

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        read = (
            self.core.read_namespaced_secret
            if kind == "secrets"
            else self.core.read_namespaced_config_map
        )
        try:
            found: dict[str, Any] = _json(read(name, namespace, _preload_content=False))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found
