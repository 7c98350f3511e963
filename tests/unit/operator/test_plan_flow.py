"""The plan, driven step by step through whole jobs (happy path and failures)."""

import pytest

from tailor_contract import AttemptResult, DatasetFacts
from tailor_operator.core.status import Billing, JobPhase, Outcome, TrialState
from tests.unit.operator.sim import Sim

FACTS = DatasetFacts(images=1200, classes=12, mean_width=640, mean_height=480, digest="sha256:ab")


def validated(sim: Sim, now: float = 0, facts: DatasetFacts = FACTS) -> None:
    """Validation's pod reports the dataset valid (as `tailor-train validate` would)."""
    sim.step(now)
    (name,) = sim.pod_names("validate")
    sim.run(name, "gpu-a", now + 1)
    message = AttemptResult(exit="SUCCESS", dataset=facts).to_termination_message()
    sim.finish(name, 0, now + 5, message=message)
    sim.step(now + 6)


def result(top1: float, export: bool = True) -> str:
    """A trainer's success: the metrics of the weights it exported, and the export."""
    return AttemptResult(
        exit="SUCCESS",
        metrics={"top1_accuracy": top1},
        primary_metric="top1_accuracy",
        export_uri="s3://models/insects/trials/t0/export/" if export else None,
        export_digest=f"sha256:{int(top1 * 1000):064x}" if export else None,
    ).to_termination_message()


def condition(sim: Sim, kind: str) -> tuple[str, str]:
    found = next(c for c in sim.status.conditions if c.type == kind)
    return found.status, found.reason


def assert_ledger_sane(sim: Sim) -> None:
    budget = sim.status.budget
    assert budget.charged_gpu_seconds <= budget.limit_gpu_seconds
    records = [r for t in sim.status.trials for r in t.attempts]
    assert budget.charged_gpu_seconds == pytest.approx(
        min(budget.limit_gpu_seconds, sum(r.charged_gpu_seconds for r in records)), abs=0.01
    )


def test_happy_path_charges_run_time_times_gpus_times_factor() -> None:
    sim = Sim()
    first = sim.step(0)
    assert [m["kind"] for m in first.creates] == ["ConfigMap", "Pod"]
    assert sim.status.phase == JobPhase.VALIDATING
    assert condition(sim, "Reconciling") == ("True", "Validating")
    (validate,) = sim.pod_names("validate")
    assert (
        "nvidia.com/gpu" not in sim.pods[validate]["spec"]["containers"][0]["resources"]["requests"]
    )
    sim.run(validate, "gpu-a", 1)
    sim.finish(
        validate,
        0,
        5,
        message=AttemptResult(exit="SUCCESS", dataset=FACTS).to_termination_message(),
    )
    sim.step(6)
    status = sim.status
    assert status.validation.state == "Succeeded"
    assert status.validation.dataset is not None
    assert status.validation.dataset.images == 1200
    assert status.budget.charged_gpu_seconds == 0  # validation runs on CPU
    (trial_pod,) = sim.pod_names("t0")
    assert status.budget.reserved_gpu_seconds == 3600
    assert sim.config(trial_pod)["allowance_gpu_seconds"] == 3600
    sim.run(trial_pod, "gpu-h", 10)  # H100: factor 2.0
    sim.step(11)
    record = sim.status.trials[0].attempts[0]
    assert (record.gpu_product, record.calibration_factor, record.calibration_version) == (
        "NVIDIA-H100-80GB-HBM3",
        2.0,
        "v7",
    )
    sim.finish(trial_pod, 0, 1010, message=result(top1=0.91))
    final = sim.step(1011)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert status.budget.charged_gpu_seconds == pytest.approx(1000 * 1 * 2.0)
    assert status.budget.reserved_gpu_seconds == 0
    assert status.best_trial is not None
    assert status.best_trial.summary == "top1_accuracy=0.91"
    assert status.model is not None
    assert status.model.uri == "s3://models/insects/trials/t0/export/"
    assert status.stop_reason == "Converged"
    assert condition(sim, "Succeeded") == ("True", "Converged")
    assert condition(sim, "Ready")[0] == "True"
    assert condition(sim, "Reconciling")[0] == "False"
    assert all(c.observed_generation == 1 for c in status.conditions)
    assert set(final.releases) == {trial_pod}
    assert ("Normal", "Succeeded") in [(t, r) for t, r, _ in sim.events]
    assert_ledger_sane(sim)


def test_a_settled_job_replanned_changes_nothing() -> None:
    sim = Sim()
    validated(sim)
    (trial_pod,) = sim.pod_names("t0")
    sim.run(trial_pod, "gpu-a", 10)
    sim.finish(trial_pod, 0, 110, message=result(top1=0.5))
    sim.step(111)
    before = sim.job["status"]
    again = sim.step(500)
    assert sim.job["status"] == before
    assert again.creates == ()
    assert again.deletes == ()
    assert again.events == ()


@pytest.mark.parametrize(
    ("exit_code", "reason", "words"),
    [
        (65, "DatasetCorrupt", "bad bbox in image 7"),
        (66, "DatasetNotFound", "could not be read"),
        (67, "BudgetNotEnough", "estimated minimum (2.00 GPU-hours)"),
    ],
)
def test_validation_failures_end_the_job_without_gpus_or_retries(
    exit_code: int, reason: str, words: str
) -> None:
    sim = Sim()
    sim.step(0)
    (validate,) = sim.pod_names("validate")
    sim.run(validate, "gpu-a", 1)
    message = AttemptResult(
        exit="X", reason="nope", problems=["bad bbox in image 7"], estimated_min_gpu_seconds=7200
    ).to_termination_message()
    sim.finish(validate, exit_code, 5, message=message)
    sim.step(6)
    sim.step(600)
    status = sim.status
    assert status.phase == JobPhase.FAILED
    assert status.reason == reason
    assert words in status.message
    assert condition(sim, "Failed") == ("True", reason)
    assert condition(sim, "Stalled") == ("True", reason)
    assert sim.pod_names("validate") == [validate]  # not retried
    assert status.trials == []
    assert status.budget.charged_gpu_seconds == 0


def test_every_trial_diverged_is_training_diverged_and_charged() -> None:
    sim = Sim(search={"models": ["resnet18", "vit_tiny"]}, resources={"maxParallelTrials": 2})
    validated(sim)
    pods = sim.pod_names("t0") + sim.pod_names("t1")
    assert len(pods) == 2
    for name in pods:
        sim.run(name, "gpu-a", 10)
        sim.finish(name, 68, 70)
    sim.step(71)
    sim.step(1000)
    status = sim.status
    assert status.reason == "TrainingDiverged"
    assert status.budget.charged_gpu_seconds == pytest.approx(2 * 60)
    assert len(sim.pods) == 3  # no retry of a diverged trial
    assert_ledger_sane(sim)


def test_eviction_is_waived_and_retried_after_backoff() -> None:
    sim = Sim()
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.run(first, "gpu-a", 10)
    sim.step(11)
    sim.evict(first, 100)
    sim.finish(first, 143, 101)  # the kubelet's SIGTERM
    sim.step(102)
    trial = sim.status.trials[0]
    assert trial.state == TrialState.RETRYING
    evicted = trial.attempts[0]
    assert (evicted.outcome, evicted.billing) == (Outcome.EVICTED, Billing.WAIVED)
    assert evicted.waived_gpu_seconds == pytest.approx(91)
    assert first not in sim.pods  # recorded, released, gone
    sim.step(105)  # backoff is 10 s after the first failure
    assert sim.pod_names("t0") == []  # not before the backoff
    sim.step(112)
    (second,) = sim.pod_names("t0")
    assert second != first
    assert sim.config(second)["attempt"] == 2
    sim.run(second, "gpu-a", 120)
    sim.finish(second, 0, 420, message=result(top1=0.8))
    sim.step(421)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert status.budget.charged_gpu_seconds == pytest.approx(300)
    assert status.budget.waived_gpu_seconds == pytest.approx(91)
    assert_ledger_sane(sim)


def test_unexplained_crashes_end_as_unknown_after_the_limit_with_nothing_charged() -> None:
    sim = Sim()  # max_attempts=3, backoff 10, 20, 40 s
    validated(sim)
    now = 10.0
    for attempt in range(1, 4):
        name = sim.pod_names("t0")[-1]
        assert sim.config(name)["attempt"] == attempt
        sim.run(name, "gpu-a", now)
        sim.finish(name, 1, now + 50)
        sim.step(now + 51)
        now += 51 + 10 * 2 ** (attempt - 1)
        sim.step(now)
    status = sim.status
    assert status.phase == JobPhase.FAILED
    assert status.reason == "Unknown"
    assert "gave up after 3 attempts" in status.message
    assert status.budget.charged_gpu_seconds == 0
    assert status.budget.waived_gpu_seconds == pytest.approx(150)
    assert all(r.outcome == Outcome.CRASHED for r in status.trials[0].attempts)


def test_backoff_grows_between_attempts() -> None:
    sim = Sim()
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.run(first, "gpu-a", 10)
    sim.finish(first, 75, 20)
    sim.step(21)
    assert sim.last is not None
    assert sim.last.requeue_after == pytest.approx(9)
    sim.step(30)
    second = sim.pod_names("t0")[-1]
    sim.run(second, "gpu-a", 31)
    sim.finish(second, 137, 40, reason="OOMKilled")
    sim.step(41)
    assert sim.last is not None
    assert sim.last.requeue_after == pytest.approx(19)
    outcomes = [r.outcome for r in sim.status.trials[0].attempts]
    assert outcomes == [Outcome.RETRYABLE, Outcome.OOM_KILLED]


def test_an_attempt_past_its_allowance_is_stopped_and_charged_its_allowance() -> None:
    sim = Sim(budget={"gpuHours": "0.1"})  # 360 GPU-seconds, grace 30 s
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-h", 10)  # factor 2: 180 real seconds of allowance
    plan = sim.step(11)
    assert plan.requeue_after == pytest.approx(10 + 180 + 30 - 11)
    sim.step(219)
    assert sim.last is not None
    assert sim.last.deletes == ()
    plan = sim.step(220)
    assert [d.name for d in plan.deletes] == [name]
    assert sim.status.trials[0].attempts[0].stop_requested == "AllowanceExceeded"
    assert ("Warning", "AllowanceExceeded") in [(t, r) for t, r, _ in sim.events]
    sim.finish(name, 143, 225)
    sim.step(226)
    status = sim.status
    record = status.trials[0].attempts[0]
    assert record.outcome == Outcome.STOPPED_AT_ALLOWANCE
    assert record.charged_gpu_seconds == pytest.approx(360)
    assert record.waived_gpu_seconds == pytest.approx((225 - 10) * 2 - 360)
    assert status.budget.charged_gpu_seconds == status.budget.limit_gpu_seconds == 360
    # Killed before it could export: no model exists, so the job cannot succeed.
    assert (status.phase, status.reason) == (JobPhase.FAILED, "NoModelExported")
    assert status.model is None
    assert "no trial wrote an exported model; 0.10 GPU-hours charged" in status.message
    assert_ledger_sane(sim)


def test_node_lost_while_running_is_waived_and_retried() -> None:
    sim = Sim()
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.run(first, "gpu-down", 10)
    sim.evict(first, 60, reason="DeletionByTaintManager")  # no kubelet will report back
    plan = sim.step(61)
    record = sim.status.trials[0].attempts[0]
    assert (record.outcome, record.billing) == (Outcome.NODE_LOST, Billing.WAIVED)
    assert record.finished_at is not None
    assert record.waived_gpu_seconds == pytest.approx(50)
    assert first in plan.releases


def test_a_pod_on_a_deleted_node_is_stopped_as_node_lost() -> None:
    sim = Sim()
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.run(first, "gpu-gone", 10)
    plan = sim.step(20)
    assert [(d.name, d.reason) for d in plan.deletes] == [(first, "NodeLost")]
    sim.step(21)
    record = sim.status.trials[0].attempts[0]
    assert (record.outcome, record.billing) == (Outcome.NODE_LOST, Billing.WAIVED)


def test_an_image_that_cannot_be_pulled_fails_the_attempt_after_the_timeout() -> None:
    sim = Sim()
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.image_pull_fails(first, "gpu-a", 10)
    plan = sim.step(20)
    assert plan.deletes == ()
    assert plan.requeue_after == pytest.approx(50)
    plan = sim.step(70)
    assert [d.reason for d in plan.deletes] == ["ImagePullFailed"]
    sim.step(71)
    record = sim.status.trials[0].attempts[0]
    assert (record.outcome, record.billing) == (Outcome.IMAGE_PULL_FAILED, Billing.WAIVED)
    assert record.charged_gpu_seconds == 0
    assert record.waived_gpu_seconds == pytest.approx(60)  # GPUs held while pulling


def test_a_dataset_error_in_a_trial_fails_the_job_and_cancels_the_others() -> None:
    sim = Sim(search={"models": ["resnet18", "vit_tiny"]}, resources={"maxParallelTrials": 2})
    validated(sim)
    (a,), (b,) = sim.pod_names("t0"), sim.pod_names("t1")
    sim.run(a, "gpu-a", 10)
    sim.run(b, "gpu-a", 10)
    sim.finish(a, 66, 30)
    plan = sim.step(31)
    assert sim.status.reason == "DatasetNotFound"
    assert [(d.name, d.reason) for d in plan.deletes] == [(b, "Cancelled")]
    sim.finish(b, 143, 35)
    sim.step(36)
    assert [t.state for t in sim.status.trials] == ["Failed", "Failed"]
    assert sim.status.trials[1].outcome == Outcome.CANCELLED
    cancelled = sim.status.trials[1].attempts[0]
    assert (cancelled.outcome, cancelled.billing) == (Outcome.CANCELLED, Billing.CHARGED)
    assert sim.status.budget.charged_gpu_seconds == pytest.approx(25)
    assert_ledger_sane(sim)


def test_parallel_trials_are_bounded_and_queue() -> None:
    sim = Sim(search={"models": ["a1", "a2", "a3"]}, resources={"maxParallelTrials": 2})
    validated(sim)
    assert [len(sim.pod_names(t)) for t in ("t0", "t1", "t2")] == [1, 1, 0]
    assert [t.state for t in sim.status.trials] == ["Running", "Running", "Queued"]
    (a,) = sim.pod_names("t0")
    sim.run(a, "gpu-a", 10)
    sim.finish(a, 0, 20, message=result(top1=0.3))
    sim.step(21)
    assert len(sim.pod_names("t2")) == 1
    assert sim.status.budget.reserved_gpu_seconds == pytest.approx(2 * 1200)


def test_trials_not_started_when_the_job_fails_are_skipped() -> None:
    sim = Sim(search={"models": ["a1", "a2"]})  # one at a time
    validated(sim)
    (first,) = sim.pod_names("t0")
    sim.run(first, "gpu-a", 10)
    sim.finish(first, 65, 20)
    sim.step(21)
    sim.step(60)
    status = sim.status
    assert status.reason == "DatasetCorrupt"
    assert [t.state for t in status.trials] == ["Failed", "Skipped"]
    assert sim.pod_names("t1") == []


@pytest.mark.parametrize(
    ("top1", "majority", "words"),
    [
        (0.91, 0.2, None),
        (0.85, 0.2, "no better than a logistic regression on 16x16 thumbnails of the images (0.9)"),
        (0.93, 0.95, "no better than always answering the most common class (0.95)"),
    ],
)
def test_a_model_no_better_than_the_references_says_so(
    top1: float, majority: float, words: str | None
):
    """The search ends at its budget below the references; the job still delivers its
    best model, and its message says what a user can do about it."""
    sim = Sim()
    facts = FACTS.model_copy(update={"pixel_reference": 0.9, "majority_fraction": majority})
    validated(sim, facts=facts)
    (trial_pod,) = sim.pod_names("t0")
    sim.run(trial_pod, "gpu-a", 10)
    sim.finish(trial_pod, 0, 110, message=result(top1=top1))
    sim.step(111)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert status.message.startswith(f"best trial t0 (resnet50): top1_accuracy={top1}")
    if words is None:
        assert "no better than" not in status.message
    else:
        assert words in status.message
        assert "more labelled images" in status.message


def test_a_perfect_model_tied_with_a_perfect_reference_is_not_called_no_better():
    """`make demo`: 20 of 20 for the model and for the pixel reference on 20 images. The
    split cannot tell them apart; telling the user their perfect model needs more images
    would be wrong, so the message says what the tie means."""
    sim = Sim()
    validated(sim, facts=FACTS.model_copy(update={"pixel_reference": 1.0}))
    (trial_pod,) = sim.pod_names("t0")
    sim.run(trial_pod, "gpu-a", 10)
    sim.finish(trial_pod, 0, 110, message=result(top1=1.0))
    sim.step(111)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert "no better than" not in status.message
    assert "more labelled images" not in status.message
    assert "is perfect on the evaluation split too" in status.message
    assert "too few to tell them apart" in status.message


def test_a_detector_that_detects_nothing_says_so_in_detection_words():
    """Detection's reference is detecting nothing (map 0), not the majority class."""
    sim = Sim(task="detection")
    validated(sim)
    (trial_pod,) = sim.pod_names("t0")
    sim.run(trial_pod, "gpu-a", 10)
    nothing = AttemptResult(
        exit="SUCCESS",
        metrics={"map": 0.0},
        primary_metric="map",
        export_uri="s3://models/insects/trials/t0/export/",
        export_digest="sha256:" + "0" * 64,
    ).to_termination_message()
    sim.finish(trial_pod, 0, 110, message=nothing)
    sim.step(111)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert "no better than detecting nothing (0)" in status.message
    assert "most common class" not in status.message
