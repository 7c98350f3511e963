"""The demo's path with a smaller budget: kubectl apply to an exported model in use.

Every pod runs for real, in a container of the trainer image on the real node:
validation, training on the digits, the export; the ledger is checked against the
container run times the kubelet reported, Prometheus against the ledger, the ONNX model
against the PyTorch one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_devcluster.demo.job import ONE_TRIAL, apply, demo_job, kubelet_log, read_job
from tailor_devcluster.demo.results import download_model
from tailor_devcluster.waiting import eventually
from tailor_trainer.predict import load_classifier, predict
from tailor_trainer.storage import Storage
from tests.e2e.checks import (
    assert_charges_are_run_times_times_factor,
    assert_the_model_is_the_export,
    attempts,
    ended,
    held_out_digits,
    read_s3_json,
    wait_done,
)
from tests.e2e.conftest import Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

# Well above validation's estimate of the cheapest useful search for the digits.
BUDGET_GPU_HOURS = "0.15"
SHORT = {"epochs": 3, "eval_every_epochs": 3, "log_every_steps": 5}
CHANCE = 0.1  # ten classes
JOB_TIMEOUT = 1200


def run_job(demo: Demo, namespace: str, name: str, **hyperparameters: Any) -> dict[str, Any]:
    assert demo.cluster.s3 is not None
    manifest = demo_job(
        demo.cluster.s3.endpoint_url,
        name=name,
        budget_gpu_hours=BUDGET_GPU_HOURS,
        hyperparameters={**SHORT, **hyperparameters},
        output=f"s3://models/{namespace}/{name}/",
        example=ONE_TRIAL,
    )
    apply(demo.cluster, manifest, namespace)
    return manifest


def test_the_demo_job_trains_charges_exports_and_predicts(demo, demo_namespace, tmp_path):
    run_job(demo, demo_namespace, "digits")
    job = wait_done(demo, demo_namespace, "digits", JOB_TIMEOUT)
    status = job["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-3000:]

    # Metrics on the evaluation split, from the trainer's own evaluation.
    accuracy = status["model"]["metrics"]["top1_accuracy"]
    assert accuracy >= 0.7 > 5 * CHANCE, accuracy

    # The ledger: run times x factor, within the budget; the validation pod is free.
    charged = assert_charges_are_run_times_times_factor(demo, demo_namespace, job)
    assert_the_model_is_the_export(demo, job)
    assert charged > 0
    assert all(a["chargedGpuSeconds"] == 0 for a in status["validation"]["attempts"])
    assert [a["outcome"] for a in attempts(job)] == ["Completed"]

    # Prometheus, scraping the operator, says the same.
    prometheus = demo.cluster.prometheus
    assert prometheus is not None
    query = f'sum(tailor_gpu_seconds_charged_total{{namespace="{demo_namespace}"}})'

    def scraped() -> float | None:
        result = prometheus.query(query)
        return float(result[0]["value"][1]) if result else None

    reported = eventually("the charged total in Prometheus", scraped, timeout=30)
    assert reported == pytest.approx(charged, abs=0.01)

    # The exported model: ONNX classifies held-out digits as PyTorch does.
    bundle = download_model(demo.cluster, status["model"]["uri"], tmp_path / "model")
    storage = Storage()
    onnx = load_classifier(storage, str(bundle), "onnx")
    torch_model = load_classifier(storage, str(bundle), "torch")
    images, truth = held_out_digits(demo, tmp_path, 8)
    by_onnx = predict(onnx, storage, images, top=10)
    by_torch = predict(torch_model, storage, images, top=10)
    for a, b in zip(by_onnx, by_torch, strict=True):
        assert a.label == b.label
        assert dict(a.top) == pytest.approx(dict(b.top), abs=1e-4)
    guessed = [p.label for p in by_onnx]
    assert sum(g == t for g, t in zip(guessed, truth, strict=True)) >= 5, (guessed, truth)

    # And the command, reading the bundle straight from S3, gives the same answer.
    assert demo.cluster.s3 is not None
    command = Path(sys.executable).parent / "tailor-train"
    answer = subprocess.run(
        [str(command), "predict", "--model", status["model"]["uri"], "--json", images[0]],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **demo.cluster.s3.environment()},
    )
    assert json.loads(answer.stdout)["label"] == by_onnx[0].label


def test_a_killed_trial_resumes_from_its_checkpoint_without_being_charged(demo, demo_namespace):
    name = "resumes"
    manifest = run_job(demo, demo_namespace, name)
    core = client.CoreV1Api(demo.cluster.api_client())
    read_log = kubelet_log(core, demo_namespace)
    selector = f"tailor.dev/job={name},tailor.dev/trial=t0,tailor.dev/attempt=1"

    def steps_done() -> str | None:
        """The first attempt's pod, once its trainer logged ten steps (`kubectl logs`)."""
        for found in core.list_namespaced_pod(demo_namespace, label_selector=selector).items:
            logged = read_log(found.metadata.name)
            if any(f" step {n}/" in logged for n in range(10, 100)):
                return str(found.metadata.name)
        return None

    pod = eventually("ten training steps", steps_done, timeout=600, interval=1)
    # The Eviction API: the API server marks the pod DisruptionTarget and deletes it;
    # the kubelet sends SIGTERM, the trainer checkpoints and exits 75.
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=demo_namespace))
    core.create_namespaced_pod_eviction(pod, demo_namespace, eviction)

    job = wait_done(demo, demo_namespace, name, JOB_TIMEOUT)
    status = job["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-3000:]
    first, second = attempts(job)
    assert first["pod"] == pod
    assert (first["outcome"], first["billing"], first["chargedGpuSeconds"]) == (
        "Evicted",
        "Waived",
        0,
    )
    assert first["waivedGpuSeconds"] > 0
    # Checkpointed, exit 75 (resume me), when the ledger has the kubelet's last status
    # (tests/integration/realnode/trainer/test_job_on_real_node.py says when it may not).
    assert first.get("exitCode", 75) == 75, first
    assert ended(demo, demo_namespace, pod) is None  # evicted: the API server deleted it
    assert (second["outcome"], second["billing"]) == ("Completed", "Charged")

    output = manifest["spec"]["output"] + "trials/t0/"
    interrupted = read_s3_json(demo, output + "results/attempt-1.json")["result"]
    resumed = read_s3_json(demo, output + "results/attempt-2.json")["result"]
    assert interrupted["stopped_by"] == "signal"
    assert resumed["resumed_from_step"] > 0
    assert resumed["resumed_from_step"] == interrupted["steps"]
    assert resumed["stopped_by"] == "completed"

    charged = assert_charges_are_run_times_times_factor(demo, demo_namespace, job)

    assert_the_model_is_the_export(demo, job)
    assert charged == pytest.approx(second["chargedGpuSeconds"])
    final = read_job(client.CustomObjectsApi(demo.cluster.api_client()), demo_namespace, name)
    assert (
        final["status"]["budget"]["chargedGpuSeconds"]
        <= final["status"]["budget"]["limitGpuSeconds"]
    )
