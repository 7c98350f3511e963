"""The demo's pure parts: the digits as COCO, the job it applies, what it prints."""

from collections import Counter
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.demo.digits import CLASS_NAMES, digits_coco, render
from tailor_devcluster.demo.job import (
    EXAMPLE,
    ONE_TRIAL,
    demo_job,
    progress_line,
    summary,
    trainer_progress,
)
from tailor_devcluster.demo.stack import default_slots
from tailor_devcluster.nodeconfig import REAL_NODE_LABEL


@pytest.fixture(scope="module")
def dataset():
    return digits_coco(side=16)


def test_the_digits_are_a_stratified_split_of_real_scans(dataset):
    train, evaluation = dataset.train, dataset.evaluation
    assert len(train["images"]) + len(evaluation["images"]) == 1797
    assert len(evaluation["images"]) == pytest.approx(0.2 * 1797, abs=1)
    train_ids = {image["id"] for image in train["images"]}
    assert train_ids.isdisjoint(image["id"] for image in evaluation["images"])
    names = {c["id"]: c["name"] for c in train["categories"]}
    assert sorted(names.values()) == sorted(CLASS_NAMES)
    for document in (train, evaluation):
        counts = Counter(names[a["category_id"]] for a in document["annotations"])
        shares = [n / len(document["annotations"]) for n in counts.values()]
        assert max(shares) - min(shares) < 0.02  # stratified: every class about 10%
    # Every annotation file names images that exist, with their labels.
    for image, annotation in zip(evaluation["images"], evaluation["annotations"], strict=True):
        assert image["file_name"] in dataset.images
        assert dataset.labels[image["file_name"]] == names[annotation["category_id"]]


def test_scans_become_pngs_of_the_requested_side(dataset):
    with Image.open(BytesIO(dataset.images["images/0000.png"])) as image:
        assert image.size == (16, 16)
        assert np.asarray(image).max() > 200  # ink, not noise around zero
    with Image.open(BytesIO(render(np.zeros((8, 8)), 32))) as image:
        assert image.size == (32, 32)
        assert np.asarray(image).max() == 0


def test_the_demo_job_is_the_example_with_the_local_endpoint():
    job = demo_job("http://127.0.0.1:41234")
    assert job["kind"] == "TrainingJob"
    assert job["spec"]["dataset"]["endpoint"] == "http://127.0.0.1:41234"
    assert job["spec"]["resources"]["gpuTypes"] == ["tailor-cpu-slot"]
    # The demo is the product's main job: data and a budget, no trials, no model.
    assert "trials" not in job["spec"]["search"]
    assert "models" not in job["spec"]["search"]
    smaller = demo_job(
        "http://x:1",
        name="small",
        budget_gpu_hours="0.1",
        hyperparameters={"epochs": 2},
        output="s3://models/t/small/",
        example=ONE_TRIAL,
    )
    assert smaller["metadata"]["name"] == "small"
    assert smaller["spec"]["budget"]["gpuHours"] == "0.1"
    assert smaller["spec"]["output"] == "s3://models/t/small/"
    hyperparameters = smaller["spec"]["search"]["trials"][0]["hyperparameters"]
    assert hyperparameters["epochs"] == 2
    assert hyperparameters["input_size"] == 32  # the rest of the example stays
    one = demo_job("http://x:1", example=ONE_TRIAL)
    assert one["spec"]["search"]["trials"][0]["hyperparameters"]["epochs"] != 2


def test_both_examples_run_on_the_local_clusters_real_node():
    """Validation and trials go to the node the cluster labels as real (its CPU slots),
    never to a simulated kwok node: the demo and the end-to-end tests apply them as
    they are."""
    for example in (EXAMPLE, ONE_TRIAL):
        resources = demo_job("http://x:1", example=example)["spec"]["resources"]
        assert resources["nodeSelector"] == {REAL_NODE_LABEL: "true"}, example
        assert resources["gpuTypes"] == [CPU_SLOT_PRODUCT], example


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "digits"}, "status": status}


def test_progress_lines_say_state_trials_budget_and_best():
    training = job(
        phase="Training",
        budget={"limitGpuSeconds": 900, "chargedGpuSeconds": 12.25, "reservedGpuSeconds": 900},
        trials=[{"name": "t0", "state": "Running", "metrics": {"top1_accuracy": 0.9}}],
    )
    assert progress_line(training, "t0: step 10/66") == (
        "Training | trials 1 (1 running) | GPU-s 12.2 of 900 (reserved 900) | "
        "best top1_accuracy=0.9 (t0) | t0: step 10/66"
    )
    validating = job(phase="Validating", validation={"state": "Running"})
    assert progress_line(validating, None).startswith("Validating (validation Running) | trials 0")


def test_the_trainer_progress_is_the_last_progress_line_of_the_running_attempt():
    logs = {
        "digits-t0-1": "INFO tailor_trainer.progress: epoch 1.00 step 5/40 loss 2.1\n",
        "digits-t1-1": (
            "INFO tailor_trainer.trial: trial t1 attempt 1: tf_efficientnet_lite0\n"
            "INFO tailor_trainer.progress: epoch 2.00 step 10/40 loss 1.3 lr 0.002\n"
            "INFO tailor_trainer.progress: evaluation at step 10: top1_accuracy 0.85\n"
            "INFO tailor_trainer.run: saved\n"
        ),
    }
    asked: list[str] = []

    def read_log(pod: str) -> str:
        asked.append(pod)
        return logs.get(pod, "")

    running = job(
        phase="Training",
        trials=[
            {"name": "t0", "attempts": [{"pod": "digits-t0-1", "phase": "Finished"}]},
            {"name": "t1", "attempts": [{"pod": "digits-t1-1", "phase": "Running"}]},
        ],
    )
    assert trainer_progress(read_log, running) == "t1: epoch 2.00 step 10/40 loss 1.3 lr 0.002"
    assert asked == ["digits-t1-1"]  # a finished attempt's log is not read
    starting = job(
        trials=[{"name": "t2", "attempts": [{"pod": "digits-t2-1", "phase": "Running"}]}]
    )
    assert trainer_progress(read_log, starting) is None


def test_the_summary_gives_metrics_and_the_ledger():
    done = job(
        phase="Succeeded",
        reason="Converged",
        model={"uri": "s3://m/x/", "metrics": {"top1_accuracy": 0.99, "f1_macro": 0.98}},
        bestTrial={"name": "t0"},
        budget={"limitGpuSeconds": 540, "chargedGpuSeconds": 61.5, "waivedGpuSeconds": 3.0},
        trials=[
            {
                "name": "t0",
                "model": "tf_efficientnet_lite0",
                "backbone": "efficientnet-lite0",
                "hyperparameters": {"recipe": "linear_probe", "input_size": 128},
                "state": "Succeeded",
                "metrics": {"top1_accuracy": 0.99},
                "attempts": [
                    {
                        "attempt": 1,
                        "outcome": "Evicted",
                        "gpuProduct": "tailor-cpu-slot",
                        "gpus": 1,
                        "calibrationFactor": 0.5,
                        "gpuSeconds": 3.0,
                        "billing": "Waived",
                    }
                ],
            }
        ],
    )
    text = "\n".join(summary(done))
    assert "TrainingJob digits: Succeeded (Converged)" in text
    assert "top1_accuracy              0.9900" in text
    assert "GPU-seconds: charged 61.5 of 540, waived 3.0" in text
    assert "t0 attempt 1: Evicted on tailor-cpu-slot x1 (factor 0.5): 3.0 GPU-s, Waived" in text
    assert "*t0 efficientnet-lite0 linear_probe at 128 px: Succeeded, top1_accuracy=0.9900" in text


def test_a_job_without_status_waits_for_the_operator():
    assert progress_line({"metadata": {"name": "digits"}}, None) == (
        "Pending (the operator has not seen it yet)"
    )


def test_the_mnist_digits_give_few_shot_splits_of_real_28_pixel_scans():
    few = digits_coco(source="mnist", train_per_class=10, eval_per_class=10)
    names = {c["id"]: c["name"] for c in few.train["categories"]}
    for document in (few.train, few.evaluation):
        counts = Counter(names[a["category_id"]] for a in document["annotations"])
        assert counts == dict.fromkeys(CLASS_NAMES, 10)
    train = {image["file_name"] for image in few.train["images"]}
    assert train.isdisjoint(few.evaluation_files())
    assert len(few.images) == 5000  # the rest is held out: never trained or selected on
    assert len(few.held_out_files()) == 4800
    first = few.train["images"][0]["file_name"]
    with Image.open(BytesIO(few.images[first])) as image:
        assert image.size == (32, 32)
        assert np.asarray(image).max() > 200


def test_the_demo_runs_two_trials_at_once_where_the_machine_has_two_cores():
    assert [default_slots(cores) for cores in (None, 1, 2, 3, 64)] == [1, 1, 2, 2, 2]
    # The example asks for as many trials at once as the demo's node has slots.
    resources = demo_job("http://127.0.0.1:9000")["spec"]["resources"]
    assert resources["maxParallelTrials"] == default_slots(64)
