"""Faults on purpose: a node lost mid-run, and the operator SIGKILLed at random moments."""

import random
import time
from collections import Counter

import pytest

from tailor_contract import AttemptResult
from tailor_devcluster.kwokctl import finish_pod, restart_node, stop_node
from tailor_devcluster.waiting import eventually
from tests.integration.operator.conftest import GROUP, PLURAL, VERSION
from tests.integration.operator.helpers import (
    FACTS,
    assert_ledger_sane,
    create_job,
    expected_charge,
    pass_validation,
    pods,
    status,
    trial_result,
    wait_condition,
    wait_pod,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_node_loss_mid_run_retries_elsewhere_and_waives_the_lost_attempt(
    operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "lost")
    pass_validation(core_v1, namespace, "lost")
    first = wait_pod(core_v1, namespace, "lost", "t0", 1)
    node = first.spec.node_name
    stop_node(core_v1, node)
    try:
        second = wait_pod(core_v1, namespace, "lost", "t0", 2, timeout=120)
    finally:
        restart_node(core_v1, node)
    assert second.spec.node_name != node
    finish_pod(
        core_v1, namespace, second.metadata.name, 0, message=trial_result(top1=0.7), after="1s"
    )
    wait_condition(trainingjobs, namespace, "lost", "Succeeded")
    final = status(trainingjobs, namespace, "lost")
    lost, succeeded = final["trials"][0]["attempts"]
    assert succeeded["billing"] == "Charged"
    assert (lost["outcome"], lost["billing"], lost["chargedGpuSeconds"]) == (
        "NodeLost",
        "Waived",
        0,
    )
    expected = expected_charge(core_v1, namespace, second.metadata.name)
    assert final["budget"]["chargedGpuSeconds"] == pytest.approx(expected, abs=1.0)
    assert_ledger_sane(final)


def test_sigkilled_operator_never_duplicates_pods_nor_loses_or_doubles_charges(
    operator, trainingjobs, core_v1, namespace
):
    jobs = [f"job-{i:02d}" for i in range(20)]
    # Every pod of these jobs exits by itself: validation reads `dataset`, trials `metrics`.
    message = AttemptResult(
        exit="SUCCESS",
        dataset=FACTS,
        metrics={"top1_accuracy": 0.6},
        primary_metric="top1_accuracy",
        export_uri="s3://models/flowers/trials/t0/export",
        export_digest="sha256:" + "6" * 64,
    )
    annotations = {
        "kwok.tailor.dev/exit-code": "0",
        "kwok.tailor.dev/message": message.to_termination_message(),
    }
    rng = random.Random(20250301)
    for index, name in enumerate(jobs):
        annotations["kwok.tailor.dev/exit-after"] = f"{2 + index % 5}s"
        create_job(
            trainingjobs,
            namespace,
            name,
            search={"models": ["resnet18", "vit_tiny"]},
            resources={"maxParallelTrials": 2},
            podMetadata={"annotations": dict(annotations)},
        )
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.3, 3.0))
            operator.kill()
            time.sleep(rng.uniform(0.0, 2.0))
            operator.start()
    finally:
        if operator.process is None or operator.process.poll() is not None:
            operator.start()

    def all_done() -> bool:
        phases = [status(trainingjobs, namespace, name).get("phase") for name in jobs]
        return all(phase == "Succeeded" for phase in phases)

    eventually(
        "20 jobs Succeeded after the operator was killed 6 times", all_done, timeout=240, interval=1
    )
    for name in jobs:
        final = status(trainingjobs, namespace, name)
        assert_ledger_sane(final)
        job_pods = pods(core_v1, namespace, name)
        keys = Counter(
            (p.metadata.labels["tailor.dev/trial"], p.metadata.labels["tailor.dev/attempt"])
            for p in job_pods
        )
        assert all(count == 1 for count in keys.values()), f"{name}: duplicate pods {keys}"
        lines = {a["pod"]: a for t in final["trials"] for a in t["attempts"]}
        trial_pods = [p for p in job_pods if p.metadata.labels["tailor.dev/role"] == "trial"]
        assert {p.metadata.name for p in trial_pods} == set(lines), (
            f"{name}: pods and ledger differ"
        )
        expected = sum(expected_charge(core_v1, namespace, p.metadata.name) for p in trial_pods)
        detail = [
            (
                a["pod"],
                a.get("calibrationFactor"),
                a.get("gpuProduct"),
                a.get("node"),
                a.get("chargedGpuSeconds"),
                a.get("startedAt"),
                a.get("finishedAt"),
            )
            for a in lines.values()
        ]
        assert final["budget"]["chargedGpuSeconds"] == pytest.approx(expected, abs=0.01), (
            name,
            detail,
        )
        assert all(not p.metadata.finalizers for p in job_pods), (
            f"{name}: a pod kept its ledger finalizer"
        )
    # Nothing left behind for the finished jobs: every job's objects are owned by it.
    remaining = trainingjobs.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
        "items"
    ]
    assert len(remaining) == 20


def test_a_job_is_deletable_while_the_operator_is_down(operator, trainingjobs, core_v1, namespace):
    create_job(trainingjobs, namespace, "orphaned")
    pass_validation(core_v1, namespace, "orphaned")
    wait_pod(core_v1, namespace, "orphaned", "t0", 1)
    operator.kill()
    try:
        trainingjobs.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "orphaned")

        def gone() -> bool:
            names = [
                item["metadata"]["name"]
                for item in trainingjobs.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                )["items"]
            ]
            return "orphaned" not in names

        eventually("the job deleted without the operator", gone, timeout=15)
    finally:
        operator.start()
    # Its pods waited for their ledger finalizer; the operator lets them go on return.
    eventually(
        "pods of the deleted job removed",
        lambda: pods(core_v1, namespace, "orphaned") == [],
        timeout=60,
    )
