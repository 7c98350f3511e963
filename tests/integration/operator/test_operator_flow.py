"""The operator against the real control plane: jobs from apply to Succeeded or Failed."""

import time

import pytest

from tailor_devcluster.kwokctl import evict_pod, finish_pod
from tests.integration.operator.helpers import (
    assert_ledger_sane,
    create_job,
    expected_charge,
    factor_for,
    pass_validation,
    pods,
    status,
    trial_result,
    wait_condition,
    wait_pod,
)

pytestmark = pytest.mark.integration


def test_happy_path(kube, operator, trainingjobs, core_v1, namespace):
    create_job(trainingjobs, namespace, "flowers", search={"models": ["resnet18"]})
    validate = wait_pod(core_v1, namespace, "flowers", "validate", 1)
    assert "nvidia.com/gpu" not in (validate.spec.containers[0].resources.requests or {})
    pass_validation(core_v1, namespace, "flowers")
    trial = wait_pod(core_v1, namespace, "flowers", "t0", 1)
    assert trial.spec.node_name in kube.gpu_nodes
    assert trial.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    finish_pod(
        core_v1, namespace, trial.metadata.name, 0, message=trial_result(top1=0.87), after="2s"
    )
    kube.kubectl(
        "wait", "--for=condition=Succeeded", "tj/flowers", "-n", namespace, "--timeout=60s"
    )
    final = status(trainingjobs, namespace, "flowers")
    expected = expected_charge(core_v1, namespace, trial.metadata.name)
    assert final["budget"]["chargedGpuSeconds"] == pytest.approx(expected, abs=1.0)
    assert final["budget"]["reservedGpuSeconds"] == 0
    (line,) = final["trials"][0]["attempts"]
    assert (
        line["outcome"],
        line["billing"],
        line["calibrationFactor"],
        line["calibrationVersion"],
    ) == ("Completed", "Charged", factor_for(core_v1, trial.spec.node_name), "test-1")
    assert final["bestTrial"]["summary"] == "top1_accuracy=0.87"
    assert final["observedGeneration"] == 1
    assert_ledger_sane(final)
    table = kube.kubectl("get", "tj", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "TASK", "STATE", "GPU-HOURS", "BEST", "AGE"]
    assert row.split()[:5] == [
        "flowers",
        "classification",
        "Succeeded",
        final["budget"]["summary"],
        "top1_accuracy=0.87",
    ]
    reasons = {e.reason for e in core_v1.list_namespaced_event(namespace).items}
    assert {"AttemptCreated", "Validated", "AttemptFinished", "Succeeded"} <= reasons
    scraped = operator.metrics()
    charged_line = next(
        line
        for line in scraped.splitlines()
        if line.startswith("tailor_gpu_seconds_charged_total{")
        and f'namespace="{namespace}"' in line
    )
    assert float(charged_line.split()[-1]) == pytest.approx(final["budget"]["chargedGpuSeconds"])
    assert (
        f'tailor_budget_limit_gpu_seconds{{namespace="{namespace}",trainingjob="flowers"}} 3600.0'
        in scraped
    )


def test_eviction_mid_run_retries_and_charges_only_the_successful_attempt(
    operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "evicted")
    pass_validation(core_v1, namespace, "evicted")
    first = wait_pod(core_v1, namespace, "evicted", "t0", 1)
    evict_pod(core_v1, namespace, first.metadata.name)
    second = wait_pod(core_v1, namespace, "evicted", "t0", 2)
    assert second.metadata.name != first.metadata.name
    finish_pod(
        core_v1, namespace, second.metadata.name, 0, message=trial_result(top1=0.5), after="1s"
    )
    wait_condition(trainingjobs, namespace, "evicted", "Succeeded")
    final = status(trainingjobs, namespace, "evicted")
    evicted, succeeded = final["trials"][0]["attempts"]
    assert (evicted["outcome"], evicted["billing"], evicted["chargedGpuSeconds"]) == (
        "Evicted",
        "Waived",
        0,
    )
    assert succeeded["billing"] == "Charged"
    expected = expected_charge(core_v1, namespace, second.metadata.name)
    assert final["budget"]["chargedGpuSeconds"] == pytest.approx(expected, abs=1.0)
    assert_ledger_sane(final)


def test_a_pod_a_user_deletes_is_charged_and_not_retried(
    operator, trainingjobs, core_v1, namespace
):
    """A plain delete (no DisruptionTarget, unlike the eviction above) is the user's."""
    create_job(trainingjobs, namespace, "deleted")
    pass_validation(core_v1, namespace, "deleted")
    first = wait_pod(core_v1, namespace, "deleted", "t0", 1)
    time.sleep(2)  # some run time to charge
    core_v1.delete_namespaced_pod(first.metadata.name, namespace)
    failed = wait_condition(trainingjobs, namespace, "deleted", "Failed", timeout=120)
    assert failed["reason"] == "NoModelExported"
    final = status(trainingjobs, namespace, "deleted")
    (line,) = final["trials"][0]["attempts"]
    assert (line["outcome"], line["billing"]) == ("Deleted", "Charged")
    assert line["chargedGpuSeconds"] > 0
    assert final["budget"]["chargedGpuSeconds"] == line["chargedGpuSeconds"]
    assert len(pods(core_v1, namespace, "deleted", "t0")) <= 1  # never a second attempt
    assert_ledger_sane(final)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(65, "DatasetCorrupt"), (66, "DatasetNotFound"), (67, "BudgetNotEnough"), (78, "InvalidSpec")],
)
def test_permanent_validation_codes_fail_without_retry(
    operator, trainingjobs, core_v1, namespace, code, reason
):
    create_job(trainingjobs, namespace, "bad")
    pod = wait_pod(core_v1, namespace, "bad", "validate", 1)
    finish_pod(
        core_v1,
        namespace,
        pod.metadata.name,
        code,
        message='{"exit": "X", "reason": "checked", "problems": ["image 3 missing"]}',
    )
    failed = wait_condition(trainingjobs, namespace, "bad", "Failed")
    assert failed["reason"] == reason
    final = status(trainingjobs, namespace, "bad")
    assert len(pods(core_v1, namespace, "bad")) == 1  # no retry, no trial
    assert final["budget"]["chargedGpuSeconds"] == 0
    assert_ledger_sane(final)


def test_diverged_trial_fails_as_training_diverged_and_is_charged(
    operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "nan")
    pass_validation(core_v1, namespace, "nan")
    pod = wait_pod(core_v1, namespace, "nan", "t0", 1)
    finish_pod(core_v1, namespace, pod.metadata.name, 68, after="1s")
    assert wait_condition(trainingjobs, namespace, "nan", "Failed")["reason"] == "TrainingDiverged"
    final = status(trainingjobs, namespace, "nan")
    assert final["budget"]["chargedGpuSeconds"] > 0
    assert len(pods(core_v1, namespace, "nan", "t0")) == 1
    assert_ledger_sane(final)


def test_repeated_unexplained_crashes_end_as_unknown_with_nothing_charged(
    operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "crashy")
    pass_validation(core_v1, namespace, "crashy")
    for attempt in (1, 2, 3):  # TAILOR_MAX_ATTEMPTS=3
        pod = wait_pod(core_v1, namespace, "crashy", "t0", attempt)
        finish_pod(core_v1, namespace, pod.metadata.name, 1, message="Segmentation fault")
    assert wait_condition(trainingjobs, namespace, "crashy", "Failed")["reason"] == "Unknown"
    final = status(trainingjobs, namespace, "crashy")
    assert final["budget"]["chargedGpuSeconds"] == 0
    assert [a["outcome"] for a in final["trials"][0]["attempts"]] == ["Crashed"] * 3
    assert len(pods(core_v1, namespace, "crashy", "t0")) == 3
    assert_ledger_sane(final)


def test_an_attempt_past_its_allowance_is_stopped_and_the_job_fails_without_a_model(
    operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "greedy", budget={"gpuHours": "0.002"})  # 7.2 GPU-s
    pass_validation(core_v1, namespace, "greedy")
    pod = wait_pod(core_v1, namespace, "greedy", "t0", 1)  # never exits by itself
    # Killed at its allowance before it could export: no model exists, so no Succeeded.
    failed = wait_condition(trainingjobs, namespace, "greedy", "Failed", timeout=60)
    assert failed["reason"] == "NoModelExported"
    assert "no trial wrote an exported model; 0.00 GPU-hours charged" in failed["message"]
    final = status(trainingjobs, namespace, "greedy")
    assert "model" not in final
    (line,) = final["trials"][0]["attempts"]
    assert (line["outcome"], line["stopRequested"]) == ("StoppedAtAllowance", "AllowanceExceeded")
    assert final["budget"]["chargedGpuSeconds"] == pytest.approx(7.2)
    assert line["gpuSeconds"] > 7.2  # it ran past its allowance...
    assert line["chargedGpuSeconds"] == pytest.approx(7.2)  # ...and is charged the allowance
    assert line["pod"] == pod.metadata.name
    assert_ledger_sane(final)


def test_image_pull_failures_are_waived_and_end_as_unknown(
    operator, trainingjobs, core_v1, namespace
):
    create_job(
        trainingjobs,
        namespace,
        "nopull",
        podMetadata={"annotations": {"kwok.tailor.dev/image-pull": "fail"}},
    )
    assert (
        wait_condition(trainingjobs, namespace, "nopull", "Failed", timeout=90)["reason"]
        == "Unknown"
    )
    final = status(trainingjobs, namespace, "nopull")
    assert [a["outcome"] for a in final["validation"]["attempts"]] == ["ImagePullFailed"] * 3
    assert final["budget"]["chargedGpuSeconds"] == 0


def test_deleting_a_job_removes_its_pods(operator, trainingjobs, core_v1, namespace):
    create_job(trainingjobs, namespace, "gone")
    pass_validation(core_v1, namespace, "gone")
    wait_pod(core_v1, namespace, "gone", "t0", 1)
    trainingjobs.delete_namespaced_custom_object(
        "tailor.dev", "v1alpha1", namespace, "trainingjobs", "gone"
    )
    from tailor_devcluster.waiting import eventually

    eventually(
        "pods of a deleted job removed", lambda: pods(core_v1, namespace, "gone") == [], timeout=60
    )
