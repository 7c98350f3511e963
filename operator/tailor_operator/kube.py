"""All Kubernetes I/O of the operator, and the only module that imports the client.

Calls are synchronous (the kubernetes client is); the reconciler runs them in
worker threads. Objects are read as the API server's JSON, not the client's
models, so the pure core parses them itself (and reading is cheaper).
"""

import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client

from tailor_contract import PretrainedBackbone, backbones
from tailor_operator.core.calibration import (
    BUILTIN,
    CalibrationError,
    CalibrationTable,
    parse_calibration,
)
from tailor_operator.core.events import Event
from tailor_operator.core.models import GROUP, PLURAL, VERSION
from tailor_operator.core.naming import label_value
from tailor_operator.core.observe import LABEL_JOB, LEDGER_FINALIZER, NodeView, parse_node
from tailor_operator.core.timeutil import format_time

log = logging.getLogger(__name__)
COMPONENT = "tailor-operator"


class StatusConflict(Exception):
    """The object changed since it was read: re-read and plan again."""


class CreateRefused(Exception):
    """The API server refused to create an object (quota, admission, RBAC)."""


def _json(response: Any) -> Any:
    return json.loads(response.data)


def _done(response: Any) -> None:
    """Read what is left of an unused answer: until its body is read, urllib3 keeps the
    connection out of the pool and the next request pays a new TLS handshake."""
    response.drain_conn()
    response.release_conn()


def _status(error: client.ApiException) -> int:
    return int(error.status or 0)


class TtlCache:
    """A small thread-safe cache whose entries expire: node facts, the calibration table."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            found = self._items.get(key)
        if found is None or time.monotonic() - found[0] > self._seconds:
            return False, None
        return True, found[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)


class Kube:
    def __init__(
        self,
        api: client.ApiClient,
        calibration: tuple[str, str] | None,
        node_ttl_seconds: float = 10.0,
        calibration_ttl_seconds: float = 30.0,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._calibration_ref = calibration
        self._nodes = TtlCache(node_ttl_seconds)
        self._calibration = TtlCache(calibration_ttl_seconds)
        self._catalog = TtlCache(calibration_ttl_seconds)
        self._last_good: CalibrationTable = BUILTIN
        self._instance = socket.gethostname()

    # -- reading --------------------------------------------------------------
    def get_trainingjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except client.ApiException as error:
            if _status(error) == 404:
                return None
            raise
        return found

    def list_job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        response = self.core.list_namespaced_pod(
            namespace, label_selector=f"{LABEL_JOB}={label_value(job)}", _preload_content=False
        )
        items: list[dict[str, Any]] = _json(response).get("items") or []
        return items

    def nodes(self, names: Iterable[str]) -> dict[str, NodeView]:
        """Facts about the named nodes; a node that does not exist is left out."""
        found: dict[str, NodeView] = {}
        for name in sorted(set(names)):
            cached, view = self._nodes.get(name)
            if not cached:
                try:
                    view = parse_node(_json(self.core.read_node(name, _preload_content=False)))
                except client.ApiException as error:
                    if _status(error) == 403:
                        # A namespace-scoped install may not read Nodes: the default
                        # factor applies and node loss is seen through DisruptionTarget.
                        log.warning("cannot read node %s (forbidden): default calibration", name)
                        view = NodeView(product=None, ready=True)
                    elif _status(error) == 404:
                        view = None
                    else:
                        raise
                self._nodes.put(name, view)
            if view is not None:
                found[name] = view
        return found

    def calibration(self) -> CalibrationTable:
        """The platform's table; the last good one (or factor 1.0) while it is broken."""
        if self._calibration_ref is None:
            return BUILTIN
        cached, table = self._calibration.get("table")
        if cached:
            return table  # type: ignore[no-any-return]
        namespace, name = self._calibration_ref
        try:
            raw = _json(
                self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
            )
            table = parse_calibration(raw.get("data"), str(raw["metadata"].get("resourceVersion")))
            self._last_good = table
        except client.ApiException as error:
            if _status(error) != 404:
                raise
            log.warning(
                "calibration ConfigMap %s/%s not found: every GPU has factor %s",
                namespace,
                name,
                BUILTIN.default_factor,
            )
            table = BUILTIN
        except CalibrationError as error:
            log.error(
                "calibration ConfigMap %s/%s is invalid (%s); keeping version %s",
                namespace,
                name,
                error,
                self._last_good.version,
            )
            table = self._last_good
        self._calibration.put("table", table)
        return table

    def catalog(self) -> tuple[PretrainedBackbone, ...]:
        """The cluster's Backbone objects; an invalid one is left out (and logged), and
        an install that may not read them (no CRD, no RBAC) has an empty catalog."""
        cached, entries = self._catalog.get("entries")
        if cached:
            return entries  # type: ignore[no-any-return]
        try:
            raw = self.custom.list_cluster_custom_object(
                backbones.GROUP, backbones.VERSION, backbones.PLURAL
            )
        except client.ApiException as error:
            if _status(error) not in (403, 404):
                raise
            log.warning("cannot list Backbone objects (%s): no catalog", _status(error))
            raw = {"items": []}
        found = []
        for item in raw.get("items") or []:
            try:
                found.append(backbones.from_object(item))
            except ValueError as error:  # pydantic's ValidationError is a ValueError
                log.error("Backbone %s is invalid: %s", item["metadata"].get("name"), error)
        entries = tuple(sorted(found, key=lambda e: e.name))
        self._catalog.put("entries", entries)
        return entries

    # -- writing --------------------------------------------------------------
    def mark_backbone_verified(self, name: str, verified_by: str, now: datetime) -> None:
        """Record on a Backbone that a validation pod read its weights and found the
        digest right; only the first time (later validations leave it as it is)."""
        try:
            current = self.custom.get_cluster_custom_object(
                backbones.GROUP, backbones.VERSION, backbones.PLURAL, name
            )
            if (current.get("status") or {}).get("verified"):
                return
            status = {
                "verified": True,
                "verifiedAt": format_time(now),
                "verifiedBy": verified_by,
                "observedGeneration": current["metadata"].get("generation"),
                "message": "weights read and digest checked by a validation pod",
            }
            self.custom.patch_cluster_custom_object_status(
                backbones.GROUP, backbones.VERSION, backbones.PLURAL, name, {"status": status}
            )
        except client.ApiException as error:
            # Bookkeeping for platform teams: never a reason to stop reconciling a job.
            log.warning("cannot mark Backbone %s verified: %s", name, _reason(error))

    def write_status(self, job: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace the status, guarded by the resourceVersion the plan was made from."""
        metadata = job["metadata"]
        body = {
            "apiVersion": job["apiVersion"],
            "kind": job["kind"],
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "resourceVersion": metadata["resourceVersion"],
            },
            "spec": job.get("spec"),
            "status": status,
        }
        try:
            written: dict[str, Any] = self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"], body
            )
        except client.ApiException as error:
            if _status(error) in (404, 409):
                raise StatusConflict(f"{metadata['namespace']}/{metadata['name']}") from None
            raise
        return written

    def create(self, manifest: dict[str, Any]) -> bool:
        """Create an object; False when it already exists (names are deterministic)."""
        namespace = manifest["metadata"]["namespace"]
        try:
            if manifest["kind"] == "Pod":
                answer = self.core.create_namespaced_pod(
                    namespace, manifest, _preload_content=False
                )
            elif manifest["kind"] == "ConfigMap":
                answer = self.core.create_namespaced_config_map(
                    namespace, manifest, _preload_content=False
                )
            else:
                raise ValueError(f"cannot create a {manifest['kind']}")
            _done(answer)
        except client.ApiException as error:
            if _status(error) == 409:
                return False
            reason = _reason(error)
            raise CreateRefused(
                f"{manifest['kind']} {namespace}/{manifest['metadata']['name']}: {reason}"
            ) from None
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            _done(self.core.delete_namespaced_pod(name, namespace, _preload_content=False))
        except client.ApiException as error:
            if _status(error) != 404:
                raise

    def release_pod(self, pod: Mapping[str, Any]) -> None:
        """Remove the ledger finalizer; the JSON-patch test makes a stale read fail safely."""
        metadata = pod["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if LEDGER_FINALIZER not in finalizers:
            return
        index = finalizers.index(LEDGER_FINALIZER)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": LEDGER_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            _done(
                self.core.patch_namespaced_pod(
                    metadata["name"], metadata["namespace"], patch, _preload_content=False
                )
            )
        except client.ApiException as error:
            if _status(error) not in (404, 422):
                raise

    def emit(self, job: Mapping[str, Any], event: Event, now: datetime) -> None:
        metadata = job["metadata"]
        stamp = format_time(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": job["apiVersion"],
                "kind": job["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/operator",
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            _done(
                self.core.create_namespaced_event(
                    metadata["namespace"], body, _preload_content=False
                )
            )
        except client.ApiException as error:
            # Events are for people; losing one must not stop the ledger.
            log.warning(
                "event %s for %s/%s not recorded: %s",
                event.reason,
                metadata["namespace"],
                metadata["name"],
                _reason(error),
            )


def _reason(error: client.ApiException) -> str:
    try:
        return str(json.loads(error.body).get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


def api_client_from_environment(pool_size: int) -> client.ApiClient:
    """An API client for $KUBECONFIG (or ~/.kube/config), else the in-cluster account."""
    from kubernetes import config

    configuration = client.Configuration()
    try:
        config.load_kube_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
