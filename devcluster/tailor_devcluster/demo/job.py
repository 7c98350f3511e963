"""The demo's TrainingJob: applied with kubectl, watched until it ends, summed up.

Progress lines come from the job's status (state, trials, GPU-seconds of the
budget, best metric) and the running trainer's own last progress line, read from
its pod's log, as `kubectl logs` reads it (through the API server and the kubelet).
"""

import copy
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tailor_devcluster.binaries import repo_root
from tailor_devcluster.cluster import LocalCluster

GROUP, VERSION, PLURAL = "tailor.dev", "v1alpha1", "trainingjobs"
EXAMPLE = Path("examples") / "demo-digits.yaml"  # the search, few-shot
ONE_TRIAL = Path("examples") / "digits-one-trial.yaml"  # one given trial, all the digits
METRICS_SHOWN = (
    "top1_accuracy",
    "top5_accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "average_precision_macro",
    "calibration_ece",
)


def demo_job(
    endpoint: str,
    name: str | None = None,
    budget_gpu_hours: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    output: str | None = None,
    example: Path = EXAMPLE,
) -> dict[str, Any]:
    """An example (the demo's, by default) with the local MinIO's address filled in,
    and the name, budget, hyperparameters or output replaced when given (the tests'
    jobs)."""
    manifest: dict[str, Any] = yaml.safe_load((repo_root() / example).read_text())
    manifest = copy.deepcopy(manifest)
    manifest["spec"]["dataset"]["endpoint"] = endpoint
    if name:
        manifest["metadata"]["name"] = name
    if budget_gpu_hours:
        manifest["spec"]["budget"]["gpuHours"] = budget_gpu_hours
    if output:
        manifest["spec"]["output"] = output
    if hyperparameters:
        for trial in manifest["spec"]["search"].get("trials", []):
            trial["hyperparameters"] = {**trial.get("hyperparameters", {}), **hyperparameters}
    return manifest


def apply(cluster: LocalCluster, manifest: Mapping[str, Any], namespace: str) -> None:
    """`kubectl apply`, as a user would."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(dict(manifest)))


def read_job(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return found


def finished(job: Mapping[str, Any]) -> bool:
    return (job.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def progress_line(job: Mapping[str, Any], trainer: str | None) -> str:
    """`Training | trials 1 (1 running) | GPU-s 12.5 of 900 (reserved 900) | best -`"""
    status = job.get("status") or {}
    if not status:
        return "Pending (the operator has not seen it yet)"
    budget = status.get("budget") or {}
    trials = status.get("trials") or []
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.get("state", "?")] = states.get(trial.get("state", "?"), 0) + 1
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items()))
    phase = status.get("phase") or "Pending"
    if phase == "Validating" or (phase == "Pending" and not trials):
        phase = f"{phase} (validation {(status.get('validation') or {}).get('state', '-')})"
    best = (status.get("bestTrial") or {}).get("summary") or _running_best(trials) or "-"
    line = (
        f"{phase} | trials {len(trials)}{f' ({counts})' if counts else ''} | GPU-s "
        f"{budget.get('chargedGpuSeconds', 0):.1f} of {budget.get('limitGpuSeconds', 0):.0f}"
        f" (reserved {budget.get('reservedGpuSeconds', 0):.0f}) | best {best}"
    )
    return f"{line} | {trainer}" if trainer else line


def _running_best(trials: list[Mapping[str, Any]]) -> str | None:
    values = [
        (t["metrics"]["top1_accuracy"], t["name"])
        for t in trials
        if "top1_accuracy" in (t.get("metrics") or {})
    ]
    if not values:
        return None
    value, name = max(values)
    return f"top1_accuracy={value:.4g} ({name})"


PROGRESS = re.compile(r"epoch [0-9.]+ step \d+/\d+ [^\n]*")
PodLog = Callable[[str], str]  # a pod's name -> its container's log so far ("" if none)


def kubelet_log(core: client.CoreV1Api, namespace: str, tail: int = 50) -> PodLog:
    """Pod logs through the API server and the kubelet, as `kubectl logs` reads them."""

    def read(pod: str) -> str:
        try:
            # Raw bytes: the client's own decoding returns the text with its newlines
            # escaped, as one line.
            answer = core.read_namespaced_pod_log(
                pod, namespace, tail_lines=tail, _preload_content=False
            )
        except client.ApiException:  # not started yet, or already gone
            return ""
        return bytes(answer.data).decode(errors="replace")

    return read


def trainer_progress(read_log: PodLog, job: Mapping[str, Any]) -> str | None:
    """The last progress line of the job's newest running attempt, from its log."""
    for trial in reversed((job.get("status") or {}).get("trials") or []):
        for attempt in reversed(trial.get("attempts") or []):
            if attempt.get("phase") != "Running":
                continue
            # The trainer's periodic progress lines (a few a minute); its evaluations,
            # many more on few images, are in the job's status as they matter.
            lines = PROGRESS.findall(read_log(attempt["pod"]))
            if lines:
                return f"{trial['name']}: {lines[-1][:110]}"
    return None


def watch(
    api: client.CustomObjectsApi,
    namespace: str,
    name: str,
    read_log: PodLog,
    say: Callable[[str], None],
    timeout: float,
    interval: float = 2.0,
) -> dict[str, Any]:
    """Polls the job until it ends, saying each new progress line; returns the job."""
    began = time.monotonic()
    last = ""
    while True:
        try:
            job = read_job(api, namespace, name)
        except client.ApiException as error:
            if error.status != 404:
                raise
            job = {}
        line = progress_line(job, trainer_progress(read_log, job))
        if line != last:
            say(f"[{time.monotonic() - began:5.0f}s] {line}")
            last = line
        if finished(job):
            return job
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"TrainingJob {namespace}/{name} not finished after {timeout:.0f}s")
        time.sleep(interval)


def summary(job: Mapping[str, Any]) -> list[str]:
    """The result in words: outcome, metrics on the evaluation split, the ledger."""
    status = job.get("status") or {}
    budget = status.get("budget") or {}
    lines = [
        f"TrainingJob {job['metadata']['name']}: {status.get('phase')} ({status.get('reason')})"
    ]
    if status.get("message"):
        lines.append(f"  {status['message']}")
    metrics = (status.get("model") or {}).get("metrics") or {}
    if metrics:
        lines.append("  metrics on the evaluation split:")
        for key in METRICS_SHOWN:
            if key in metrics:
                lines.append(f"    {key:<26} {metrics[key]:.4f}")
    trials = status.get("trials") or []
    if trials:
        best = (status.get("bestTrial") or {}).get("name")
        lines.append("  the search's trials (the exported one marked *):")
        for trial in trials:
            hyperparameters = trial.get("hyperparameters") or {}
            value = (trial.get("metrics") or {}).get("top1_accuracy")
            score = f"top1_accuracy={value:.4f}" if value is not None else "no result"
            lines.append(
                f"   {'*' if trial['name'] == best else ' '}{trial['name']} "
                f"{trial.get('backbone') or trial.get('model')} "
                f"{hyperparameters.get('recipe', 'train')} at "
                f"{hyperparameters.get('input_size', '?')} px: {trial.get('state')}, {score}"
            )
    lines.append(
        f"  GPU-seconds: charged {budget.get('chargedGpuSeconds', 0):.1f} of "
        f"{budget.get('limitGpuSeconds', 0):.0f}, waived {budget.get('waivedGpuSeconds', 0):.1f}"
    )
    for trial in status.get("trials") or []:
        for attempt in trial.get("attempts") or []:
            lines.append(
                f"    {trial['name']} attempt {attempt['attempt']}: {attempt.get('outcome')} on "
                f"{attempt.get('gpuProduct')} x{attempt.get('gpus')} (factor "
                f"{attempt.get('calibrationFactor')}): {attempt.get('gpuSeconds', 0):.1f} "
                f"GPU-s, {attempt.get('billing')}"
            )
    return lines
