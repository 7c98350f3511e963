"""The node agent's loop: heartbeats, and each bound pod taken from Pending to its end.

A development aid standing in for a kubelet on a machine without a container
runtime; production runs on real kubelets. Each pod is polled from the API server
(every `poll_seconds`) and moves through the local states

    admitted -> running -> terminated          (or rejected at admission)

with its status reported like a kubelet's. A deleted pod gets SIGTERM, SIGKILL
after its grace period, its final status, then a delete with grace period 0;
finalizers are left to their owners.
"""

import json
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailor_contract.nodes import GPU_RESOURCE
from tailor_devcluster.nodeagent.admission import admission_failure, pod_requests
from tailor_devcluster.nodeagent.capacity import (
    Devices,
    allocatable,
    machine_cpus,
    machine_memory_bytes,
    node_conditions,
    node_manifest,
)
from tailor_devcluster.nodeagent.env import ContainerConfigError
from tailor_devcluster.nodeagent.kubeapi import NodeApi
from tailor_devcluster.nodeagent.launch import container_of, device_env, prepare
from tailor_devcluster.nodeagent.process import ContainerProcess
from tailor_devcluster.nodeagent.shorttmp import remove_link
from tailor_devcluster.nodeagent.status import (
    exit_of,
    lost_status,
    rejected_status,
    running_status,
    terminated_status,
    termination_message,
    timestamp,
    waiting_status,
)

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    state_dir: Path
    bin_dir: Path  # where container commands are looked up first (the virtualenv)
    lease_seconds: int = 10
    heartbeat_seconds: float = 2.0
    node_status_seconds: float = 10.0
    poll_seconds: float = 0.5


@dataclass
class LocalPod:
    uid: str
    folder: Path
    requests: dict[str, float]
    state: str = "admitted"  # admitted | running | terminated | rejected
    devices: list[int] = field(default_factory=list)
    process: ContainerProcess | None = None
    status: dict[str, Any] | None = None  # what should be reported
    reported: str | None = None  # what was reported last (JSON)
    next_try: float = 0.0
    waiting_since: datetime | None = None  # first failed start: the waiting status keeps it
    deletion_confirmed: bool = False

    @property
    def holds_resources(self) -> bool:
        return self.state in ("admitted", "running")


class NodeAgent:
    def __init__(self, api: NodeApi, settings: AgentSettings, devices: Devices) -> None:
        self.api = api
        self.settings = settings
        self.devices = devices
        self.allocatable = allocatable(devices, machine_cpus(), machine_memory_bytes())
        self.pods: dict[str, LocalPod] = {}
        self.registered_at = timestamp(datetime.now(UTC))
        self._next_lease = self._next_status = 0.0

    # -- the node ------------------------------------------------------------------

    def register(self) -> None:
        manifest = node_manifest(
            self.settings.node_name,
            self.devices,
            int(self.allocatable["cpu"]),
            int(self.allocatable["memory"]),
            self.registered_at,
        )
        self.api.register(manifest)
        self.heartbeat(force=True)
        log.info(
            "node %s registered: %d x %s (%s)",
            self.settings.node_name,
            self.devices.count,
            self.devices.product,
            "CUDA" if self.devices.cuda else "CPU slots",
        )

    def heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next_lease:
            self.api.renew_lease(self.settings.lease_seconds, datetime.now(UTC))
            self._next_lease = now + self.settings.heartbeat_seconds
        if force or now >= self._next_status:
            stamp = timestamp(datetime.now(UTC))
            self.api.update_node_status({"conditions": node_conditions(stamp, self.registered_at)})
            self._next_status = now + self.settings.node_status_seconds

    # -- the loop ------------------------------------------------------------------

    def tick(self) -> None:
        self.heartbeat()
        bound = self.api.pods()
        present = set()
        for pod in bound:
            present.add(pod["metadata"]["uid"])
            try:
                self.sync(pod)
            except Exception:  # one bad pod must not stop the node
                log.exception("pod %s/%s", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for uid in set(self.pods) - present:
            self.forget(uid)

    def sync(self, pod: Mapping[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        local = self.pods.get(uid) or self.adopt(pod)
        deleting = pod["metadata"].get("deletionTimestamp") is not None
        if local.state == "admitted":
            if deleting:
                local.state = "terminated"  # nothing ran: no status to report
            elif time.monotonic() >= local.next_try:
                self.start(pod, local)
        if local.state == "running":
            self.watch(pod, local, deleting)
        wanted = json.dumps(local.status) if local.status is not None else None
        if local.status is not None and local.reported != wanted:
            local.reported = wanted if self.api.patch_pod_status(pod, local.status) else None
        finished = local.state in ("terminated", "rejected")
        settled = wanted is None or local.reported == wanted
        if deleting and finished and settled and not local.deletion_confirmed:
            self.api.finish_deletion(pod)
            local.deletion_confirmed = True

    def adopt(self, pod: Mapping[str, Any]) -> LocalPod:
        """A pod seen for the first time: admit it, or take note of how it already is."""
        metadata, status = pod["metadata"], pod.get("status") or {}
        folder = (
            self.settings.state_dir
            / "pods"
            / (f"{metadata['namespace']}_{metadata['name']}_{metadata['uid'][:8]}")
        )
        local = LocalPod(metadata["uid"], folder, {**pod_requests(pod), "pods": 1.0})
        self.pods[local.uid] = local
        if status.get("phase") in ("Succeeded", "Failed"):
            local.state = "terminated"  # ended before this agent started
        elif any(
            "running" in (s.get("state") or {}) for s in status.get("containerStatuses") or []
        ):
            # Its process belonged to an earlier agent and died with it.
            local.state = "terminated"
            now = datetime.now(UTC)
            local.status = lost_status(pod, None, now, "local-process://lost")
        else:
            self.admit(pod, local)
        return local

    def admit(self, pod: Mapping[str, Any], local: LocalPod) -> None:
        holding = [p.requests for p in self.pods.values() if p.holds_resources and p is not local]
        failure = admission_failure(self.allocatable, holding, local.requests)
        if failure is not None:
            local.state = "rejected"
            local.status = rejected_status(*failure)
            log.warning("pod %s rejected: %s", pod["metadata"]["name"], failure[1])
            return
        wanted = int(local.requests.get(GPU_RESOURCE, 0))
        if self.devices.cuda and wanted:
            taken = {d for p in self.pods.values() if p.holds_resources for d in p.devices}
            local.devices = [d for d in range(self.devices.count) if d not in taken][:wanted]

    def start(self, pod: Mapping[str, Any], local: LocalPod) -> None:
        local.folder.mkdir(parents=True, exist_ok=True)
        try:
            launch = prepare(
                pod,
                local.folder,
                self.settings.bin_dir,
                self.api,
                device_env(self.devices.cuda, local.devices),
            )
        except ContainerConfigError as error:
            local.next_try = time.monotonic() + RETRY_SECONDS
            local.waiting_since = local.waiting_since or datetime.now(UTC)
            local.status = waiting_status(pod, error.reason, str(error), local.waiting_since)
            return
        process = ContainerProcess(
            launch.argv, launch.env, launch.cwd, local.folder / "container.log"
        )
        local.process, local.state = process, "running"
        local.status = running_status(pod, process.started, process.container_id)
        log.info("pod %s started: pid %d: %s", pod["metadata"]["name"], process.pid, launch.argv)

    def watch(self, pod: Mapping[str, Any], local: LocalPod, deleting: bool) -> None:
        process = local.process
        assert process is not None
        code = process.poll()
        if code is None and deleting:
            process.terminate()
            assert process.terminated_at is not None
            if time.monotonic() - process.terminated_at >= grace_seconds(pod):
                process.kill()
                code = process.popen.wait()
                process.poll()
        if code is None:
            return
        self.finish(pod, local, process, code)

    def finish(
        self, pod: Mapping[str, Any], local: LocalPod, process: ContainerProcess, code: int
    ) -> None:
        assert process.finished is not None
        ended = exit_of(code)
        written = _read_text(local.folder / "termination-log")
        container = container_of(pod)
        message = termination_message(
            written,
            _read_text(local.folder / "container.log"),
            container.get("terminationMessagePolicy"),
            ended.code,
        )
        local.state = "terminated"
        local.status = terminated_status(
            pod, process.started, process.finished, ended, message, process.container_id
        )
        record = {
            "pod": pod["metadata"]["name"],
            "namespace": pod["metadata"]["namespace"],
            "uid": local.uid,
            "argv": process.popen.args,
            "started": process.started.isoformat(),
            "finished": process.finished.isoformat(),
            "run_seconds": process.run_seconds(),
            "exit_code": ended.code,
            "signalled": process.terminated_at is not None,
        }
        (local.folder / RUN_RECORD).write_text(json.dumps(record, indent=2))
        log.info("pod %s ended: exit %d (%s)", pod["metadata"]["name"], ended.code, ended.reason)

    def forget(self, uid: str) -> None:
        """The pod is gone from the API server (or force-deleted): kill what runs,
        keep the log and the run record, drop the volumes."""
        local = self.pods.pop(uid)
        if local.process is not None and local.process.poll() is None:
            local.process.kill()
            local.process.popen.wait()
        shutil.rmtree(local.folder / "volumes", ignore_errors=True)
        remove_link(uid)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to every process, SIGKILL to what is left after `grace`."""
        running = [p.process for p in self.pods.values() if p.process and p.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in running):
            time.sleep(0.1)
        for process in running:
            process.kill()
        for uid in self.pods:
            remove_link(uid)


def grace_seconds(pod: Mapping[str, Any]) -> float:
    """The deletion's grace period, else the pod's (the API server sets both)."""
    metadata, spec = pod["metadata"], pod.get("spec") or {}
    value = metadata.get("deletionGracePeriodSeconds")
    if value is None:
        value = spec.get("terminationGracePeriodSeconds", 30)
    return float(value)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
