"""The AutoML search end to end: the user gives the digits and a budget, nothing else.

Validation, every trial and every promotion run as real trainer processes on the node
agent's CPU slots, priced with the demo's CPU-slot priors (TAILOR_COST_*); the ledger is
checked against the run times the agent measured, the promotions against the
checkpoints they resumed from, and the best trial's export against held-out digits.
"""

import json
from typing import Any

import pytest

from tailor_devcluster.demo.job import ONE_TRIAL, apply, demo_job
from tailor_devcluster.demo.results import download_model
from tailor_trainer.predict import load_classifier, predict
from tailor_trainer.storage import Storage
from tests.e2e.checks import (
    assert_charges_are_run_times_times_factor,
    assert_the_model_is_the_export,
    held_out_digits,
    read_s3_json,
    wait_done,
)
from tests.e2e.conftest import Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

METRIC = "top1_accuracy"
# 180 calibrated GPU-seconds (six minutes of CPU slots): at the demo's priors, a bracket
# of three configurations whose best one is promoted to three times its allowance.
BUDGET_GPU_HOURS = "0.05"
SEARCH_TIMEOUT = 1200


def search_job(demo: Demo, namespace: str, name: str) -> dict[str, Any]:
    """The demo's job without its trials: data, budget and where to put the model."""
    assert demo.cluster.s3 is not None
    manifest = demo_job(
        demo.cluster.s3.endpoint_url,
        name=name,
        budget_gpu_hours=BUDGET_GPU_HOURS,
        output=f"s3://models/{namespace}/{name}/",
        example=ONE_TRIAL,  # all the digits (no catalog here: a search from scratch)
    )
    del manifest["spec"]["search"]["trials"]
    manifest["spec"]["resources"]["maxParallelTrials"] = 2  # the agent's two slots
    apply(demo.cluster, manifest, namespace)
    return manifest


def knobs(trial: dict[str, Any]) -> str:
    """A trial's configuration without its epochs, which follow its rungs."""
    chosen = {k: v for k, v in trial["hyperparameters"].items() if k != "epochs"}
    return f"{trial['model']} {json.dumps(chosen, sort_keys=True)}"


def charged(trial: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in trial["attempts"] if a["billing"] == "Charged"]


def test_the_search_chooses_promotes_and_exports_within_the_budget(demo, demo_namespace, tmp_path):
    manifest = search_job(demo, demo_namespace, "search")
    output = manifest["spec"]["output"]
    job = wait_done(demo, demo_namespace, "search", SEARCH_TIMEOUT)
    status = job["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-3000:]
    trials = status["trials"]

    # It searched: several configurations, each its own.
    assert len(trials) >= 3, [knobs(t) for t in trials]
    assert len({knobs(t) for t in trials}) == len(trials)
    assert status["stopReason"] in ("Converged", "NoImprovement", "BudgetExhausted")

    # Never over budget: the job's total, and each trial within its cumulative allowance;
    # every charge is the agent's measured run time x the slot's factor.
    total = assert_charges_are_run_times_times_factor(demo, demo_namespace, job)
    assert_the_model_is_the_export(demo, job)
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
    assert status["model"]["metrics"][METRIC] == best["metrics"][METRIC] >= 0.7
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

    # The exported model classifies held-out digits.
    bundle = download_model(demo.cluster, status["model"]["uri"], tmp_path / "model")
    classifier = load_classifier(Storage(), str(bundle), "onnx")
    images, truth = held_out_digits(demo, tmp_path, 20)
    guessed = [p.label for p in predict(classifier, Storage(), images, top=1)]
    right = sum(g == t for g, t in zip(guessed, truth, strict=True))
    assert right >= 14, (guessed, truth)
