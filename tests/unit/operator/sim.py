"""A small stand-in for the API server and kubelet, to drive plans step by step.

It applies a plan the way kube.py does (status first, then creates, deletes and
releases) and lets a test move pods along as a kubelet would.
"""

import copy
import json
from typing import Any

from tailor_contract import PretrainedBackbone
from tailor_operator.core.models import parse_trainingjob
from tailor_operator.core.observe import LEDGER_FINALIZER, parse_pod
from tailor_operator.core.plan import Plan, plan
from tailor_operator.core.planner import TrialPlanner
from tailor_operator.core.policy import Policy
from tailor_operator.core.status import TrainingJobStatus
from tests.unit.operator.factories import GRACE, POLICY, job_json, ts, world


class Sim:
    def __init__(
        self,
        policy: Policy = POLICY,
        planner: TrialPlanner | None = None,
        catalog: tuple[PretrainedBackbone, ...] = (),
        **spec_overrides: Any,
    ) -> None:
        self.catalog = catalog
        self.job = job_json(**spec_overrides)
        self.pods: dict[str, dict[str, Any]] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.policy = policy
        self.planner = planner
        self.last: Plan | None = None
        self.events: list[tuple[str, str, str]] = []

    # -- the operator's side -------------------------------------------------
    def step(self, now: float) -> Plan:
        parsed = parse_trainingjob(self.job)
        views = [parse_pod(p) for p in self.pods.values()]
        here = world(views, now=now, planner=self.planner, policy=self.policy, catalog=self.catalog)
        result = plan(parsed, here)
        self.job["status"] = result.status.to_json()
        for manifest in result.creates:
            store = self.pods if manifest["kind"] == "Pod" else self.config_maps
            name = manifest["metadata"]["name"]
            if name not in store:
                created = copy.deepcopy(manifest)
                created["metadata"]["creationTimestamp"] = ts(now)
                created.setdefault("status", {"phase": "Pending"})
                store[name] = created
        for delete in result.deletes:
            self.delete(delete.name, now)
        for name in result.releases:
            self.release(name)
        self.events += [(e.type, e.reason, e.message) for e in result.events]
        self.last = result
        return result

    def delete(self, name: str, now: float) -> None:
        """As the API server does: deletionTimestamp is the end of the grace period."""
        metadata = self.pods[name]["metadata"]
        if "deletionTimestamp" not in metadata:
            metadata["deletionTimestamp"] = ts(now + GRACE)
            metadata["deletionGracePeriodSeconds"] = GRACE

    def release(self, name: str) -> None:
        metadata = self.pods[name]["metadata"]
        metadata["finalizers"] = [
            f for f in metadata.get("finalizers", []) if f != LEDGER_FINALIZER
        ]
        if metadata.get("deletionTimestamp") and not metadata["finalizers"]:
            del self.pods[name]

    @property
    def status(self) -> TrainingJobStatus:
        return TrainingJobStatus.model_validate(self.job["status"])

    # -- the kubelet's side --------------------------------------------------
    def pod_names(self, trial: str) -> list[str]:
        return sorted(
            (
                n
                for n, p in self.pods.items()
                if p["metadata"]["labels"]["tailor.dev/trial"] == trial
            ),
            key=lambda n: int(self.pods[n]["metadata"]["labels"]["tailor.dev/attempt"]),
        )

    def config(self, name: str) -> dict[str, Any]:
        return json.loads(self.config_maps[name]["data"]["trial.json"])  # type: ignore[no-any-return]

    def run(self, name: str, node: str, now: float, scheduled: float | None = None) -> None:
        pod = self.pods[name]
        pod["spec"]["nodeName"] = node
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": ts(now if scheduled is None else scheduled),
                }
            ],
            "containerStatuses": [
                {"name": "trainer", "state": {"running": {"startedAt": ts(now)}}}
            ],
        }

    def finish(
        self,
        name: str,
        exit_code: int,
        now: float,
        message: str | None = None,
        reason: str | None = None,
    ) -> None:
        pod = self.pods[name]
        started = pod["status"]["containerStatuses"][0]["state"].get("running", {}).get("startedAt")
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": started,
            "finishedAt": ts(now),
        }
        if message is not None:
            terminated["message"] = message
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        pod["status"]["containerStatuses"] = [
            {"name": "trainer", "state": {"terminated": terminated}}
        ]

    def evict(self, name: str, now: float, reason: str = "EvictionByEvictionAPI") -> None:
        pod = self.pods[name]
        self.delete(name, now)
        pod["status"].setdefault("conditions", []).append(
            {"type": "DisruptionTarget", "status": "True", "reason": reason}
        )

    def image_pull_fails(self, name: str, node: str, now: float) -> None:
        pod = self.pods[name]
        pod["spec"]["nodeName"] = node
        pod["status"] = {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(now)}
            ],
            "containerStatuses": [
                {"name": "trainer", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ],
        }
