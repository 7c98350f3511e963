"""The AutoML search through the real operator and control plane, trials on kwok GPU
nodes with scripted outcomes: it promotes, stops and finishes within budget."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tailor_contract import AttemptResult, DatasetFacts
from tailor_devcluster.kwokctl import finish_pod
from tailor_devcluster.waiting import eventually
from tailor_operator.core.models import parse_trainingjob
from tailor_operator.core.planner import PlannerView
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.decide import SearchRound
from tailor_operator.core.status import DatasetSummary
from tests.integration.operator.helpers import (
    assert_ledger_sane,
    create_job,
    expected_charge,
    pods,
    status,
    wait_condition,
    wait_pod,
)
from tests.integration.operator.process import OperatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

METRIC = "top1_accuracy"
# Sized so that the search plans nine configurations and two rungs above the first
# (checked below).
FACTS = DatasetFacts(images=60_000, classes=10, mean_width=224, mean_height=224, digest="d")
HOURS = "1.5"


@pytest.fixture(scope="module")
def automl_operator(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator, restarted with the AutoML planner for this module."""
    before = operator.env.get("TAILOR_PLANNER")
    operator.stop()
    operator.env["TAILOR_PLANNER"] = "automl"
    operator.start()
    yield operator
    operator.stop()
    if before is None:
        operator.env.pop("TAILOR_PLANNER", None)
    else:
        operator.env["TAILOR_PLANNER"] = before
    operator.start()


def planned_ladder(namespace: str, name: str, api: client.CustomObjectsApi) -> tuple[float, ...]:
    """The rungs the operator's planner computes for this job (the same pure code)."""
    raw = api.get_namespaced_custom_object(
        "tailor.dev", "v1alpha1", namespace, "trainingjobs", name
    )
    job = parse_trainingjob(raw)
    summary = DatasetSummary.of(FACTS)
    view = PlannerView(
        spec=job.spec,
        dataset=summary,
        trials=[],
        budget=job.status.budget,
        default_model="resnet50",
    )
    ladder = SearchRound(view, AutoMLPlanner().cost, 0.002).ladder
    assert ladder is not None
    assert (ladder.trials, ladder.top) == (9, 2), ladder
    return ladder.rungs


def validate(core: client.CoreV1Api, namespace: str, job: str) -> None:
    pod = wait_pod(core, namespace, job, "validate", 1)
    message = AttemptResult(exit="SUCCESS", dataset=FACTS).to_termination_message()
    finish_pod(core, namespace, pod.metadata.name, 0, message=message)


def result(value: float, epochs: float, trial: str = "t0") -> str:
    """A trainer's success: the metrics of the weights it exported, and the export."""
    return AttemptResult(
        exit="SUCCESS",
        metrics={METRIC: value},
        primary_metric=METRIC,
        epochs=epochs,
        steps=100,
        export_uri=f"s3://models/flowers/trials/{trial}/export",
        export_digest=f"sha256:{trial}-{value}",
    ).to_termination_message()


def trial_config(core: client.CoreV1Api, namespace: str, pod: str) -> dict[str, Any]:
    config_map = core.read_namespaced_config_map(pod, namespace)
    return json.loads(config_map.data["trial.json"])  # type: ignore[no-any-return]


def test_the_search_promotes_the_best_and_a_perfect_score_stops_it(
    automl_operator, trainingjobs, core_v1, namespace
):
    create_job(
        trainingjobs,
        namespace,
        "search",
        budget={"gpuHours": HOURS},
        resources={"maxParallelTrials": 4},
    )
    validate(core_v1, namespace, "search")
    first = {t: wait_pod(core_v1, namespace, "search", t, 1) for t in ("t0", "t1", "t2", "t3")}
    rungs = planned_ladder(namespace, "search", trainingjobs)
    for pod in first.values():
        config = trial_config(core_v1, namespace, pod.metadata.name)
        assert config["allowance_gpu_seconds"] == pytest.approx(rungs[0], abs=0.01)
    assert trial_config(core_v1, namespace, first["t0"].metadata.name)["model"] == "resnet50"
    # Three results at rung 0 (t1 still running): the best third, t0, is promoted.
    for trial, value in (("t0", 0.70), ("t2", 0.50), ("t3", 0.52)):
        finish_pod(
            core_v1,
            namespace,
            first[trial].metadata.name,
            0,
            message=result(value, 4, trial),
            after="1s",
        )
    promoted = wait_pod(core_v1, namespace, "search", "t0", 2)
    again = trial_config(core_v1, namespace, promoted.metadata.name)
    before = trial_config(core_v1, namespace, first["t0"].metadata.name)
    charged = expected_charge(core_v1, namespace, first["t0"].metadata.name)
    assert again["attempt"] == 2
    assert again["output"] == before["output"]  # it resumes from the same checkpoints
    assert again["hyperparameters"]["epochs"] > before["hyperparameters"]["epochs"]
    assert again["allowance_gpu_seconds"] == pytest.approx(rungs[1] - charged, abs=1.5)
    # Slots freed by t2 and t3 went to new configurations of the bracket.
    wait_pod(core_v1, namespace, "search", "t4", 1)
    finish_pod(core_v1, namespace, promoted.metadata.name, 0, message=result(1.0, 12), after="1s")
    wait_condition(trainingjobs, namespace, "search", "Succeeded", timeout=90)
    final = status(trainingjobs, namespace, "search")
    assert final["stopReason"] == "Converged"
    assert (final["bestTrial"]["name"], final["bestTrial"]["value"]) == ("t0", 1.0)
    assert final["model"]["uri"].startswith("s3://models/flowers/trials/t0/")
    trials = {t["name"]: t for t in final["trials"]}
    t0 = [a for a in trials["t0"]["attempts"] if a["billing"] == "Charged"]
    assert len(t0) == 2
    for line in t0:  # each attempt is charged its own run, nothing more
        assert line["chargedGpuSeconds"] == pytest.approx(
            expected_charge(core_v1, namespace, line["pod"]), abs=1.0
        )
    reasons = {e.reason for e in core_v1.list_namespaced_event(namespace).items}
    assert {"Promoted", "EarlyStopped", "Succeeded"} <= reasons
    stopped = [a for t in trials.values() for a in t["attempts"] if a["outcome"] == "EarlyStopped"]
    assert {a["pod"] for a in stopped} >= {first["t1"].metadata.name}
    assert all(a["billing"] == "Charged" for a in stopped)
    assert final["budget"]["reservedGpuSeconds"] == 0
    assert final["budget"]["chargedGpuSeconds"] <= final["budget"]["limitGpuSeconds"]
    assert_ledger_sane(final)


def test_a_flat_search_stops_for_no_improvement_within_budget(
    automl_operator, trainingjobs, core_v1, namespace
):
    # Every pod exits by itself after 2 s: validation reads `dataset`, trials the metric.
    message = AttemptResult(
        exit="SUCCESS",
        dataset=FACTS,
        metrics={METRIC: 0.6},
        primary_metric=METRIC,
        export_uri="s3://models/flat/export",
        export_digest="sha256:flat",
    ).to_termination_message()
    annotations = {
        "kwok.tailor.dev/exit-code": "0",
        "kwok.tailor.dev/exit-after": "2s",
        "kwok.tailor.dev/message": message,
    }
    create_job(
        trainingjobs,
        namespace,
        "flat",
        budget={"gpuHours": HOURS},
        resources={"maxParallelTrials": 3},
        podMetadata={"annotations": annotations},
    )
    wait_condition(trainingjobs, namespace, "flat", "Succeeded", timeout=180)
    final = status(trainingjobs, namespace, "flat")
    assert final["stopReason"] == "NoImprovement"
    rungs = planned_ladder(namespace, "flat", trainingjobs)
    attempts = [a for t in final["trials"] for a in t["attempts"]]
    assert any(a["allowanceGpuSeconds"] > rungs[0] for a in attempts), "nothing was promoted"
    assert len(final["trials"]) <= 9  # stopped within the planned bracket
    budget = final["budget"]
    assert budget["chargedGpuSeconds"] < 0.1 * budget["limitGpuSeconds"]
    assert budget["reservedGpuSeconds"] == 0
    lines = {a["pod"] for a in attempts}
    trial_pods = [
        p
        for p in pods(core_v1, namespace, "flat")
        if p.metadata.labels["tailor.dev/role"] == "trial"
    ]
    assert {p.metadata.name for p in trial_pods} <= lines  # every pod is on the ledger
    assert_ledger_sane(final)

    def released() -> bool:
        return all(not p.metadata.finalizers for p in pods(core_v1, namespace, "flat"))

    eventually("ledger finalizers released", released, timeout=30)
