"""The plan after crashes, restarts, lost objects and odd neighbours."""

import pytest

from tailor_operator.core.models import parse_trainingjob
from tailor_operator.core.observe import parse_pod
from tailor_operator.core.plan import plan
from tailor_operator.core.status import AttemptPhase, Billing, JobPhase, Outcome
from tests.unit.operator.factories import job_json, pod_json, world
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_plan_flow import result, validated


def test_a_crash_after_the_status_write_recreates_the_same_pod_not_another() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    del sim.pods[name]  # the operator died before the create reached the API server
    del sim.config_maps[name]
    again = sim.step(7)
    assert [m["metadata"]["name"] for m in again.creates] == [name, name]
    assert sim.pod_names("t0") == [name]
    assert len(sim.status.trials[0].attempts) == 1


def test_a_crash_before_the_release_is_finished_by_the_next_plan() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.finish(name, 0, 20, message=result(top1=0.4))
    parsed = parse_trainingjob(sim.job)
    first = plan(parsed, world([parse_pod(p) for p in sim.pods.values()], now=21))
    sim.job["status"] = first.status.to_json()  # written; the release never happened
    second = sim.step(22)
    assert second.releases == (name,)
    assert second.status.budget.charged_gpu_seconds == first.status.budget.charged_gpu_seconds == 10


def test_a_pod_that_vanished_unrecorded_is_lost_waived_and_retried() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.step(11)
    del sim.pods[name]  # someone force-removed the finalizer
    sim.step(50)
    record = sim.status.trials[0].attempts[0]
    assert (record.outcome, record.billing) == (Outcome.LOST, Billing.WAIVED)
    sim.step(70)
    assert len(sim.pod_names("t0")) == 1
    assert sim.pod_names("t0") != [name]


def test_an_older_observation_after_the_final_one_changes_nothing() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.finish(name, 0, 20, message=result(top1=0.4))
    sim.step(21)
    settled = sim.job["status"]["trials"][0]["attempts"][0]
    stale = pod_json(name, phase="Running", node="gpu-h", started=10)  # a lagging watch cache
    replanned = plan(parse_trainingjob(sim.job), world([parse_pod(stale)], now=30))
    assert (
        replanned.status.trials[0]
        .attempts[0]
        .model_dump(mode="json", by_alias=True, exclude_none=True)
        == settled
    )
    # A pod that still runs although its line is settled must not run on unaccounted.
    assert [d.reason for d in replanned.deletes] == ["Recorded"]


def test_a_deleted_job_releases_every_pod_and_plans_nothing_else() -> None:
    raw = job_json()
    raw["metadata"]["deletionTimestamp"] = "2025-03-01T13:00:00Z"
    pods = [
        parse_pod(pod_json("p1", phase="Running", node="gpu-a", started=1)),
        parse_pod(pod_json("p2", finalizer=False)),
    ]
    result = plan(parse_trainingjob(raw), world(pods, now=100))
    assert result.releases == ("p1",)
    assert result.creates == ()
    assert result.deletes == ()


def test_pods_of_another_job_with_the_same_name_are_ignored() -> None:
    sim = Sim()
    sim.pods["old"] = pod_json(
        "old", trial="t0", owner_uid="another-uid", phase="Running", node="gpu-a", started=1
    )
    result = sim.step(0)
    assert "old" not in result.releases
    assert all(d.name != "old" for d in result.deletes)
    assert sim.status.trials == []


def test_a_pod_without_a_ledger_line_is_adopted_into_its_trial() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.finish(name, 0, 40, message=result(top1=0.4))
    sim.job["status"]["trials"][0]["attempts"] = []  # a restore without the line
    sim.step(41)
    (record,) = sim.status.trials[0].attempts
    assert record.pod == name
    assert record.charged_gpu_seconds == pytest.approx(30)
    assert sim.status.phase == JobPhase.SUCCEEDED


def test_a_pod_of_an_unknown_trial_is_stopped() -> None:
    sim = Sim()
    validated(sim)
    sim.pods["stray"] = pod_json("stray", trial="t9", phase="Running", node="gpu-a", started=1)
    result = sim.step(10)
    assert [(d.name, d.reason) for d in result.deletes] == [("stray", "Unaccounted")]


def test_a_bad_hyperparameter_stalls_the_job_before_any_pod() -> None:
    sim = Sim(search={"trials": [{"model": "resnet18", "hyperparameters": {"lr": -1}}]})
    result = sim.step(0)
    assert result.creates == ()
    stalled = next(c for c in sim.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "InvalidSpec")
    assert "spec.search.trials[0].hyperparameters.lr" in stalled.message


def test_a_missing_secret_stalls_the_job_with_the_kubelet_message() -> None:
    sim = Sim()
    sim.step(0)
    (name,) = sim.pod_names("validate")
    sim.pods[name]["status"] = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "trainer",
                "state": {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": 'secret "s3-creds" not found',
                    }
                },
            }
        ],
    }
    sim.step(5)
    stalled = next(c for c in sim.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "PodConfigError")
    assert 'secret "s3-creds" not found' in stalled.message


def test_a_trial_that_cannot_fit_the_remaining_budget_waits_then_is_skipped() -> None:
    sim = Sim(search={"models": ["a1", "a2"]}, resources={"maxParallelTrials": 2})
    validated(sim)
    assert [len(sim.pod_names(t)) for t in ("t0", "t1")] == [1, 1]  # 1800 s each
    # The budget is lowered (never below what is charged): both reservations no longer fit.
    sim.job["spec"]["budget"]["gpuHours"] = "0.6"  # 2160 s
    (a,), (b,) = sim.pod_names("t0"), sim.pod_names("t1")
    for name in (a, b):
        sim.run(name, "gpu-a", 10)
        sim.finish(name, 75, 20)
    sim.step(21)
    sim.step(40)
    assert [t.state for t in sim.status.trials] == ["Running", "Queued"]  # t1 waits for t0
    second = sim.pod_names("t0")[-1]
    sim.run(second, "gpu-a", 41)
    sim.finish(second, 0, 1041, message=result(top1=0.5))
    sim.step(1042)
    status = sim.status
    assert [t.state for t in status.trials] == ["Succeeded", "Skipped"]
    assert "budget exhausted" in status.trials[1].message
    assert status.phase == JobPhase.SUCCEEDED
    assert status.stop_reason == "BudgetExhausted"
    assert status.budget.charged_gpu_seconds == pytest.approx(1000)


def test_the_record_moves_forward_only() -> None:
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-a", 10)
    sim.step(11)
    assert sim.status.trials[0].attempts[0].phase == AttemptPhase.RUNNING
    sim.pods[name]["status"] = {"phase": "Pending"}  # an older state of the pod
    sim.step(12)
    record = sim.status.trials[0].attempts[0]
    assert record.phase == AttemptPhase.RUNNING
    assert record.started_at is not None
