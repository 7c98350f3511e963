"""Operator scale: N TrainingJobs on M kwok GPU nodes, one operator process, against
the real local control plane. Prints jobs per second and the latency from a job's
create to its first trial pod, the operator's peak RSS and its API requests per job.

The trainer never runs. The validation pod must succeed before a trial pod exists,
so this script plays the kubelet's part: as soon as kwok reports a validation pod
Running, it has kwok end it with exit code 0 and a termination message carrying an
AttemptResult with DatasetFacts (tailor_devcluster.kwokctl.finish_pod). The latency
therefore includes kwok's simulated pod start and that round trip; it is broken down.

Jobs are created at a steady rate (--rate, default the goal's 30/s): an operator that
keeps up shows that rate and a short latency, one that cannot shows its capacity and
a growing backlog. --rate 0 creates them all at once (capacity only).

    .venv/bin/python bench/operator_scale.py            # 1,000 jobs on 500 nodes
    .venv/bin/python bench/operator_scale.py --quick    # 50 jobs on 20 nodes
    .venv/bin/python bench/operator_scale.py --jobs 5000 --nodes 500
"""

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tailor_contract import AttemptResult, DatasetFacts
from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.counting import CountedClient, counted_client, dispatched_requests
from tailor_devcluster.following import follow
from tailor_devcluster.kwokctl import finish_pod
from tailor_devcluster.ports import free_port
from tailor_devcluster.waiting import eventually

CRD = Path(__file__).resolve().parent.parent / "crds" / "tailor.dev_trainingjobs.yaml"
GROUP, VERSION, PLURAL = "tailor.dev", "v1alpha1", "trainingjobs"
NAMESPACE, SYSTEM = "bench", "tailor-system"
GOAL_RATE, GOAL_P99, GOAL_RSS_MB, GOAL_JOBS = 30.0, 5.0, 300.0, 5000
RESULT = AttemptResult(
    exit="SUCCESS",
    dataset=DatasetFacts(images=500, classes=5, mean_width=320, mean_height=240, digest="x"),
).to_termination_message()


@dataclass
class Job:
    created: float | None = None  # the bench sent the create, as `kubectl apply` would
    validation_seen: float | None = None
    validation_done: float | None = None  # phase Succeeded seen
    trial_seen: float | None = None


@dataclass
class Tracker:
    """Per-job times (time.monotonic), fed by the creates and one watch on the jobs' pods."""

    jobs: dict[str, Job] = field(default_factory=dict)
    finishing: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job(self, name: str) -> Job:
        with self.lock:
            return self.jobs.setdefault(name, Job())

    def count(self, attribute: str) -> int:
        with self.lock:
            return sum(getattr(j, attribute) is not None for j in self.jobs.values())


def prepare(cluster: LocalCluster, tmp: Path) -> CountedClient:
    """The namespaces, the CRD, a calibration table and the operator's own identity."""
    api = cluster.api_client()
    cluster.create_namespace(NAMESPACE)
    cluster.create_namespace(SYSTEM)
    extensions = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(CRD.read_text())
    extensions.create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api)
    eventually(
        "trainingjobs served",
        lambda: custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL),
    )
    table = {"version": "bench", "default": "1.0", "NVIDIA-H100-80GB-HBM3": "2.2"}
    client.CoreV1Api(api).create_namespaced_config_map(
        SYSTEM, {"metadata": {"name": "tailor-calibration"}, "data": table}
    )
    assert cluster.plane is not None
    return counted_client(
        api,
        cluster.plane.server,
        cluster.plane.pki.ca_cert,
        (SYSTEM, "tailor-operator"),
        tmp / "operator.kubeconfig",
    )


def watch_pods(api: client.ApiClient, tracker: Tracker, stop: threading.Event) -> None:
    """Follows the jobs' pods (raw JSON: it shares the CPUs with the operator) and plays
    the kubelet's part for validation pods."""
    core = client.CoreV1Api(api)
    kubelet = ThreadPoolExecutor(4, thread_name_prefix="kubelet")
    lister = functools.partial(core.list_namespaced_pod, NAMESPACE)

    def handle(kind: str, pod: dict[str, Any]) -> None:
        if kind != "DELETED":
            _saw(core, tracker, kubelet, pod)

    follow(lister, handle, stop, label_selector="tailor.dev/job")
    kubelet.shutdown(wait=False, cancel_futures=True)


def _saw(core: client.CoreV1Api, tracker: Tracker, kubelet: ThreadPoolExecutor, pod: Any) -> None:
    now = time.monotonic()
    labels = pod["metadata"].get("labels") or {}
    job = tracker.job(labels.get("tailor.dev/job", ""))
    if labels.get("tailor.dev/role") == "trial":
        job.trial_seen = job.trial_seen or now
        return
    job.validation_seen = job.validation_seen or now
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        job.validation_done = job.validation_done or now
    running = any(
        "running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []
    )
    name = pod["metadata"]["name"]
    if running and name not in tracker.finishing:  # the kubelet's part, once per pod
        tracker.finishing.add(name)
        kubelet.submit(finish_pod, core, NAMESPACE, name, 0, message=RESULT)


def create_jobs(api: client.ApiClient, tracker: Tracker, count: int, rate: float) -> None:
    custom = client.CustomObjectsApi(api)

    def create(index: int) -> None:
        name = f"job-{index:05d}"
        spec = {
            "task": "classification",
            "budget": {"gpuHours": "1"},
            "dataset": {"train": f"s3://data/{name}/train.json", "credentialsSecret": "s3"},
            "output": f"s3://models/{name}/",
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "spec": spec}
        body |= {"metadata": {"name": name}}
        tracker.job(name).created = time.monotonic()
        answer = custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, body, _preload_content=False
        )
        answer.drain_conn()  # or the connection is not reused
        answer.release_conn()

    began = time.monotonic()
    with ThreadPoolExecutor(8, thread_name_prefix="create") as pool:
        for index in range(count):
            if rate > 0:
                time.sleep(max(0.0, began + index / rate - time.monotonic()))
            pool.submit(create, index)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: steadier than wall time on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    @classmethod
    def start(cls, kubeconfig: Path, workers: int, log: Path) -> "Operator":
        health, metrics = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "TAILOR_TRAINER_IMAGE": "registry.invalid/tailor-trainer:bench",
            "TAILOR_CALIBRATION_CONFIGMAP": f"{SYSTEM}/tailor-calibration",
            "TAILOR_WORKERS": str(workers),
            "TAILOR_METRICS_PORT": str(metrics),
            "TAILOR_HEALTH_PORT": str(health),
        }
        command = [sys.executable, "-m", "tailor_operator.main"]
        process = subprocess.Popen(
            command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        operator = cls(process, metrics, log)

        def healthy() -> bool:
            operator.check_alive()
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)

        eventually("operator /healthz", healthy, timeout=60, interval=0.3)
        return operator

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"the operator exited:\n{self.log.read_text()[-3000:]}")

    def reconciles(self) -> tuple[float, float]:
        """How many reconciliations the operator ran, and their total seconds."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        prefix = "tailor_reconcile_duration_seconds"
        count = sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(f"{prefix}_count"))
        total = sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(f"{prefix}_sum"))
        return count, total


@dataclass
class Usage:
    """Counters read before and after the run; their difference is what the run cost."""

    requests: float  # the operator's, as the API server counted them
    reconciles: float
    reconcile_seconds: float
    operator_cpu: float
    plane_cpu: float  # apiserver, etcd, controller-manager, scheduler, kwok

    @classmethod
    def read(cls, cluster: LocalCluster, counted: CountedClient, operator: Operator) -> "Usage":
        requests = dispatched_requests(cluster.api_client(), counted.flow_schema)
        plane = sum(cpu_seconds(p.popen.pid) for p in cluster.supervisor.processes)
        operator_cpu = cpu_seconds(operator.process.pid)
        return cls(requests, *operator.reconciles(), operator_cpu, plane)

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values or [float("nan")])[0], (values or [float("nan")])[0], max(values or [0.0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def spread(values: list[float]) -> str:
    p50, p99, top = quantiles(values)
    return f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {top:.2f} s"


def report(args: argparse.Namespace, tracker: Tracker, rss: float, used: Usage) -> None:
    done = [j for j in tracker.jobs.values() if j.created and j.trial_seen]
    first = min(j.created for j in tracker.jobs.values() if j.created)
    span = max((j.trial_seen for j in done if j.trial_seen), default=first) - first
    rate = len(done) / span if span > 0 else 0.0

    def between(start: str, end: str) -> list[float]:
        return [getattr(j, end) - getattr(j, start) for j in done if getattr(j, start)]

    latency = between("created", "trial_seen")
    per_job = 1 / max(1, len(done))
    complete = len(done) == args.jobs
    offered = f"at {args.rate:g} jobs/s" if args.rate > 0 else "all at once"
    print(
        f"operator_scale: {args.jobs:,} TrainingJobs on {args.nodes} kwok GPU nodes, one operator"
        f" process ({args.workers} workers); jobs created {offered}"
    )
    print(
        "  the bench plays the kubelet: each validation pod is ended by kwok (exit 0, an"
        " AttemptResult with DatasetFacts) as soon as it is seen Running"
    )
    print(f"  jobs with a trial pod: {len(done):,} of {args.jobs:,}, in {span:.1f} s")
    print(f"  throughput, create -> first trial pod created: {rate:.1f} jobs/s")
    print(f"  latency, create -> first trial pod created: {spread(latency)}")
    print(
        f"    operator, create -> validation pod: {spread(between('created', 'validation_seen'))}"
    )
    print(
        "    kwok + bench, validation pod -> Succeeded:"
        f" {spread(between('validation_seen', 'validation_done'))}"
    )
    print(
        "    operator, validation Succeeded -> trial pod:"
        f" {spread(between('validation_done', 'trial_seen'))}"
    )
    print(f"  operator peak RSS (VmHWM): {rss:.0f} MB")
    print(
        f"  API requests by the operator: {used.requests:,.0f}, {used.requests * per_job:.1f} per"
        " job (apiserver_flowcontrol_dispatched_requests_total of its own ServiceAccount)"
    )
    print(
        f"  reconciliations: {used.reconciles * per_job:.1f} per job,"
        f" {1000 * used.reconcile_seconds / max(1, used.reconciles):.0f} ms each on average"
    )
    operator_ms, plane_ms = 1000 * used.operator_cpu * per_job, 1000 * used.plane_cpu * per_job
    print(
        f"  CPU per job: operator {operator_ms:.0f} ms (alone on a core: at most"
        f" {1000 / max(operator_ms, 1e-9):.0f} jobs/s), control plane and kwok {plane_ms:.0f} ms"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  load average at the end: {load} on {os.cpu_count()} CPUs (shared machine?)")
    goals = [
        (f">= {GOAL_RATE:g} jobs/s", complete and rate >= GOAL_RATE),
        (f"p99 < {GOAL_P99:g} s", complete and quantiles(latency)[1] < GOAL_P99),
        (f"RSS < {GOAL_RSS_MB:g} MB", rss < GOAL_RSS_MB),
    ]
    scale = (
        "" if args.jobs >= GOAL_JOBS else f" (set at {GOAL_JOBS:,} jobs; this run {args.jobs:,})"
    )
    print(f"  goal{scale}: " + "; ".join(f"{g}: {'met' if ok else 'NOT met'}" for g, ok in goals))


def run(args: argparse.Namespace, cluster: LocalCluster, tmp: Path) -> int:
    print(f"cluster up in {cluster.startup_seconds:.0f} s", file=sys.stderr)
    counted = prepare(cluster, tmp)
    api = cluster.api_client()
    api.configuration.connection_pool_maxsize = 16
    tracker, stop = Tracker(), threading.Event()
    threading.Thread(target=watch_pods, args=(api, tracker, stop), daemon=True).start()
    operator = Operator.start(counted.kubeconfig, args.workers, tmp / "operator.log")
    before = Usage.read(cluster, counted, operator)
    creator = threading.Thread(target=create_jobs, args=(api, tracker, args.jobs, args.rate))
    creator.start()
    deadline = time.monotonic() + (args.timeout or 120 + args.jobs * 0.5)
    while tracker.count("trial_seen") < args.jobs and time.monotonic() < deadline:
        operator.check_alive()
        time.sleep(5)
        print(
            f"  created {tracker.count('created')}, validated {tracker.count('validation_done')},"
            f" trial pods {tracker.count('trial_seen')}",
            file=sys.stderr,
        )
    creator.join()
    used = Usage.read(cluster, counted, operator) - before
    rss = peak_rss_mb(operator.process.pid)
    stop.set()
    operator.process.terminate()
    operator.process.wait(30)
    report(args, tracker, rss, used)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="TrainingJobs, 1..5000")
    parser.add_argument("--nodes", type=int, default=500, help="kwok GPU nodes (8 GPUs each)")
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="jobs/s; 0: all at once")
    parser.add_argument("--workers", type=int, default=8, help="the operator's TAILOR_WORKERS")
    parser.add_argument("--timeout", type=float, default=0, help="seconds (0: 120 + jobs / 2)")
    parser.add_argument("--quick", action="store_true", help="50 jobs on 20 nodes")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.nodes = 50, 20
    if not 1 <= args.jobs <= 5000 or args.nodes < 1 or args.rate < 0 or args.workers < 1:
        parser.error("--jobs must be 1..5000, --nodes and --workers at least 1, --rate >= 0")
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp:
        settings = ClusterSettings(
            state_dir=Path(tmp) / "cluster",
            gpu_nodes=args.nodes,
            minio=False,
            prometheus=False,
            # The kubelet's upstream lease timing: tests' 4 s leases on 500 nodes would
            # be 500 writes per second, most of two cores, before any job exists.
            node_lease_seconds=40,
            node_monitor_grace_seconds=40,
        )
        with LocalCluster(settings) as cluster:
            return run(args, cluster, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
