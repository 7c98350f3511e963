"""Issue 12's rules through the whole plan: what a user did is charged and not retried,
the job's model is an export the trainer wrote, a bad configuration is InvalidSpec."""

from dataclasses import replace

import pytest

from tailor_contract import AttemptResult, DatasetFacts, ExitCode
from tailor_operator.core.status import Billing, JobPhase, Outcome, TrialState
from tests.unit.operator.factories import POLICY
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_plan_flow import assert_ledger_sane, result, validated

USER_TRIAL = {"trials": [{"model": "resnet18", "hyperparameters": {"batch_size": 512}}]}


def test_a_pod_a_user_deletes_is_charged_and_ends_the_trial() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.delete(name, 100)  # a plain delete: no DisruptionTarget condition
    sim.finish(name, 143, 105)
    sim.step(106)
    sim.step(1000)  # long past any backoff: still no second attempt
    status = sim.status
    (record,) = status.trials[0].attempts
    assert (record.outcome, record.billing) == (Outcome.DELETED, Billing.CHARGED)
    assert record.charged_gpu_seconds == pytest.approx(95)
    assert sim.pod_names("t0") == []  # recorded, released, never replaced
    assert (status.phase, status.reason) == (JobPhase.FAILED, "NoModelExported")
    assert "deleted by a person or a controller" in status.message
    assert_ledger_sane(sim)


def test_out_of_memory_with_the_users_own_trial_is_charged_and_not_retried() -> None:
    sim = Sim(search=USER_TRIAL)
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    # A kernel OOM kill leaves no result: the kubelet's fallback message is the log's tail.
    last_log = "INFO tailor_trainer.trial: trial t0 attempt 1: resnet18, 4 steps, batch 512"
    sim.finish(name, 137, 70, message=last_log, reason="OOMKilled")
    sim.step(71)
    sim.step(1000)
    trial = sim.status.trials[0]
    assert trial.chosen_by == "user"
    (record,) = trial.attempts
    assert (record.outcome, record.billing) == (Outcome.OOM_KILLED_USER_CONFIG, Billing.CHARGED)
    assert record.charged_gpu_seconds == pytest.approx(60)
    assert trial.state == TrialState.FAILED
    # What to change comes first; the log's last line after it, named as such.
    assert trial.message == (
        "charged: out of memory with the configuration the job's spec chose; "
        "try a smaller batch_size, input_size or model (exit 137 (OOMKilled)); "
        f"its log ended: {last_log}"
    )
    assert sim.status.phase == JobPhase.FAILED
    assert "out of memory with the configuration the job's spec chose" in sim.status.message


def killed_for_memory_once() -> Sim:
    """The simple planner's own trial (a configuration the system chose), its first
    attempt OOM-killed, and the operator past the retry's backoff."""
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.finish(name, 137, 70, reason="OOMKilled")
    sim.step(71)
    sim.step(90)
    return sim


def test_out_of_memory_with_a_configuration_the_system_chose_is_waived_and_retried() -> None:
    sim = killed_for_memory_once()
    first = sim.status.trials[0].attempts[0]
    assert (first.outcome, first.billing) == (Outcome.OOM_KILLED, Billing.WAIVED)
    assert len(sim.pod_names("t0")) == 2


def test_a_configuration_the_system_chose_killed_for_memory_again_ends_the_trial_uncharged() -> (
    None
):
    sim = killed_for_memory_once()
    second = sim.pod_names("t0")[-1]
    sim.run(second, "gpu-a", 95)
    sim.finish(second, 137, 150, reason="OOMKilled")
    for now in (151, 200, 400):  # past any backoff: no third attempt comes
        sim.step(now)
    assert len(sim.pod_names("t0")) == 2
    trial = sim.status.trials[0]
    assert [a.outcome for a in trial.attempts] == [Outcome.OOM_KILLED, Outcome.OOM_KILLED]
    assert {a.billing for a in trial.attempts} == {Billing.WAIVED}
    assert trial.charged_gpu_seconds == 0
    assert "gave up after 2 out-of-memory kills in a row" in (trial.message or "")


@pytest.mark.parametrize("where", ["validate", "t0"])
def test_a_configuration_the_trainer_refuses_fails_the_job_as_invalid_spec(where: str) -> None:
    sim = Sim()
    message = AttemptResult(
        exit="INVALID_CONFIG",
        reason="invalid configuration: spec.search.models[0]: timm has no model 'resnet5O'",
    ).to_termination_message()
    if where == "t0":
        validated(sim)
    else:
        sim.step(0)
    (name,) = sim.pod_names(where)
    sim.run(name, "gpu-a", 10)
    sim.finish(name, int(ExitCode.INVALID_CONFIG), 20, message=message)
    sim.step(21)
    sim.step(1000)
    status = sim.status
    assert (status.phase, status.reason) == (JobPhase.FAILED, "InvalidSpec")
    assert "timm has no model 'resnet5O'" in status.message
    assert sim.pod_names(where) == [name]  # never retried
    attempts = status.validation.attempts if where == "validate" else status.trials[0].attempts
    assert len(attempts) == 1
    assert status.budget.charged_gpu_seconds == 0  # the SPEC: not charged


def test_a_model_the_export_check_refuses_is_waived_not_retried_and_named() -> None:
    """The trainer's exporter failed, not the user: nothing is charged, the same weights
    are not trained again five times, and the job says whose fault it was."""
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    refused = AttemptResult(
        exit="EXPORT_REFUSED",
        reason="the export check refused the trained model: ONNX logits differ from "
        "PyTorch's by 0.3 (allowed 0.0001)",
        metrics={"top1_accuracy": 0.8},
        primary_metric="top1_accuracy",
    ).to_termination_message()
    sim.finish(name, int(ExitCode.EXPORT_REFUSED), 100, message=refused)
    sim.step(101)
    sim.step(1000)  # long past any backoff
    status = sim.status
    (record,) = status.trials[0].attempts
    assert (record.outcome, record.billing) == (Outcome.EXPORT_REFUSED, Billing.WAIVED)
    assert record.charged_gpu_seconds == 0
    assert sim.pod_names("t0") == [name]  # never retried
    trial = status.trials[0]
    assert trial.state == TrialState.FAILED
    assert "ONNX logits differ from PyTorch's by 0.3" in trial.message
    assert trial.metrics == {}  # nothing delivered: no number to show
    assert (status.phase, status.reason) == (JobPhase.FAILED, "NoModelExported")
    assert "export check refused the trained model of t0" in status.message
    assert "not charged" in status.message
    assert status.budget.charged_gpu_seconds == 0
    assert_ledger_sane(sim)


def test_waived_attempts_of_a_job_are_bounded() -> None:
    sim = Sim(policy=replace(POLICY, max_attempts=10, max_waived_attempts=2))
    validated(sim)
    now = 10.0
    for _ in range(2):
        (name,) = sim.pod_names("t0")
        sim.run(name, "gpu-a", now)
        sim.evict(name, now + 20)
        sim.finish(name, 143, now + 25)
        sim.step(now + 26)
        now += 200
        sim.step(now)
    status = sim.status
    assert sim.pod_names("t0") == []  # the third attempt never started
    assert [r.billing for r in status.trials[0].attempts] == [Billing.WAIVED] * 2
    assert "2 waived attempts" in status.trials[0].message
    assert status.phase == JobPhase.FAILED
    assert status.reason == "Unknown"


def test_a_trial_stopped_by_the_search_with_a_higher_interim_metric_is_not_the_result() -> None:
    """Two given trials: t0 exports 0.7; t1 reports 0.9 from weights it never exported."""
    sim = Sim(
        search={"trials": [{"model": "resnet18"}, {"model": "resnet34"}]},
        resources={"maxParallelTrials": 2},
    )
    validated(sim)
    a, b = sim.pod_names("t0")[0], sim.pod_names("t1")[0]
    for name in (a, b):
        sim.run(name, "gpu-a", 10)
    sim.finish(a, 0, 100, message=result(top1=0.7))
    sim.finish(b, 0, 100, message=result(top1=0.9, export=False))
    sim.step(101)
    status = sim.status
    assert status.phase == JobPhase.SUCCEEDED
    assert status.best_trial is not None
    assert status.best_trial.name == "t0"
    assert status.model is not None
    assert status.model.metrics == {"top1_accuracy": 0.7}
    assert status.model.digest == status.trials[0].export_digest
    assert status.trials[1].metrics == {}  # nothing delivered: no number to show


def finish_listed_trials(sim: Sim, metrics: list[dict[str, float]], primary: str) -> None:
    """Each listed trial (t0, t1, ...) runs and succeeds with its metrics and an export."""
    names = [sim.pod_names(f"t{i}")[0] for i in range(len(metrics))]
    for name, scored in zip(names, metrics, strict=True):
        sim.run(name, "gpu-a", 10)
        message = AttemptResult(
            exit="SUCCESS",
            metrics=scored,
            primary_metric=primary,
            export_uri=f"s3://models/{name}/export/",
            export_digest=f"sha256:{name}",
        ).to_termination_message()
        sim.finish(name, 0, 100, message=message)
    sim.step(101)


def test_a_metric_to_minimise_picks_the_lowest() -> None:
    sim = Sim(
        search={
            "primaryMetric": "calibration_ece",
            "trials": [{"model": "resnet18"}, {"model": "resnet34"}],
        },
        resources={"maxParallelTrials": 2},
    )
    validated(sim)
    scores = [{"calibration_ece": ece, "top1_accuracy": 0.5} for ece in (0.05, 0.2)]
    finish_listed_trials(sim, scores, "calibration_ece")
    assert sim.status.best_trial is not None
    assert (sim.status.best_trial.name, sim.status.best_trial.value) == ("t0", 0.05)


@pytest.mark.parametrize(("images", "chosen"), [(100, "t1"), (1200, "t0")])
def test_a_difference_the_evaluation_split_cannot_resolve_goes_to_the_lower_log_loss(
    images: int, chosen: str
) -> None:
    """0.90 against 0.85 is one image of the 20 held out of 100 (a close call: the lower
    log loss wins), and 12 images of the 240 held out of 1,200 (the metric decides)."""
    sim = Sim(
        search={"trials": [{"model": "resnet18"}, {"model": "resnet34"}]},
        resources={"maxParallelTrials": 2},
    )
    facts = DatasetFacts(images=images, classes=10, mean_width=64, mean_height=64, digest="d")
    validated(sim, facts=facts)
    scores = [{"top1_accuracy": 0.90, "log_loss": 0.84}, {"top1_accuracy": 0.85, "log_loss": 0.52}]
    finish_listed_trials(sim, scores, "top1_accuracy")
    assert sim.status.best_trial is not None
    assert sim.status.best_trial.name == chosen
    assert sim.status.model is not None
    trial = next(t for t in sim.status.trials if t.name == chosen)
    assert sim.status.model.uri == trial.export_uri


def test_equal_accuracy_goes_to_the_lower_log_loss() -> None:
    """On 20 evaluation images accuracy moves in steps of 0.05: ties are common."""
    sim = Sim(
        search={"trials": [{"model": "resnet18"}, {"model": "resnet34"}]},
        resources={"maxParallelTrials": 2},
    )
    validated(sim)
    scores = [{"top1_accuracy": 0.85, "log_loss": loss} for loss in (0.9, 0.4)]
    finish_listed_trials(sim, scores, "top1_accuracy")
    assert sim.status.best_trial is not None
    assert sim.status.best_trial.name == "t1"
