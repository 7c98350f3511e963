import pytest

from tailor_operator.core.attempts import allowance_deadline, needed_stop, observe, read_result
from tailor_operator.core.observe import parse_node, parse_pod
from tailor_operator.core.status import AttemptPhase, AttemptRecord, Outcome, StopRequest
from tests.unit.operator.factories import NODES, POLICY, TABLE, at, pod, pod_json


def test_parse_a_terminated_pod() -> None:
    view = parse_pod(
        pod_json(
            "p",
            phase="Failed",
            node="gpu-a",
            scheduled=1,
            started=2,
            finished=9,
            exit_code=75,
            message='{"exit":"RETRYABLE"}',
            deleting=9,
            disruption="EvictionByEvictionAPI",
        )
    )
    assert view.terminal
    assert view.node == "gpu-a"
    assert view.has_finalizer
    assert (view.scheduled_at, view.started_at, view.deleting_since) == (at(1), at(2), at(9))
    assert view.end is not None
    assert (view.end.exit_code, view.end.finished_at) == (75, at(9))
    assert view.disruption == "EvictionByEvictionAPI"
    assert (view.trial, view.attempt) == ("t0", 1)


def test_parse_an_empty_pod_tolerates_missing_status() -> None:
    view = parse_pod({"metadata": {"name": "p"}})
    assert (view.phase, view.node, view.end, view.owner_uid, view.attempt) == (
        "Pending",
        None,
        None,
        None,
        None,
    )


def test_parse_node() -> None:
    node = parse_node(
        {
            "metadata": {"labels": {"nvidia.com/gpu.product": "T4"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    assert (node.product, node.ready) == ("T4", True)
    assert parse_node({}).ready is False


def fresh(**fields) -> AttemptRecord:
    return AttemptRecord.model_validate(
        {
            "attempt": 1,
            "pod": "p",
            "created_at": at(0),
            "gpus": 1,
            "allowance_gpu_seconds": 100.0,
        }
        | fields
    )


@pytest.mark.parametrize(
    ("kwargs", "phase"),
    [
        ({"phase": "Pending"}, AttemptPhase.PENDING),
        ({"phase": "Pending", "node": "gpu-a", "scheduled": 1}, AttemptPhase.PENDING),
        ({"phase": "Running", "node": "gpu-a", "started": 2}, AttemptPhase.RUNNING),
        (
            {"phase": "Succeeded", "node": "gpu-a", "started": 2, "finished": 5, "exit_code": 0},
            AttemptPhase.FINISHED,
        ),
        ({"phase": "Pending", "deleting": 3}, AttemptPhase.FINISHED),  # nothing ran
        (
            {"phase": "Running", "node": "gpu-down", "started": 2, "deleting": 3},
            AttemptPhase.FINISHED,
        ),
        ({"phase": "Running", "node": "gpu-a", "started": 2, "deleting": 3}, AttemptPhase.RUNNING),
    ],
)
def test_observe_moves_a_record_to_the_pods_phase(kwargs, phase) -> None:
    assert observe(fresh(), pod("p", **kwargs), NODES, TABLE, POLICY, at(10)).record.phase == phase


def test_a_deleted_pod_whose_kubelet_never_answers_is_given_up_after_the_timeout() -> None:
    view = pod("p", phase="Running", node="gpu-a", started=2, deleting=3)  # grace ends at 33
    assert not observe(fresh(), view, NODES, TABLE, POLICY, at(33 + 299)).record.final
    settled = observe(fresh(), view, NODES, TABLE, POLICY, at(33 + 300)).record
    assert settled.final
    assert settled.outcome == Outcome.DELETED
    assert settled.finished_at == at(3)  # when deletion was asked for, not the grace's end


def test_a_pod_deleted_before_it_ran_finishes_when_deletion_was_asked_for() -> None:
    """deletionTimestamp is the end of the grace period; the backoff counts from the request."""
    view = pod("p", phase="Pending", node="gpu-a", scheduled=1, deleting=10)
    settled = observe(fresh(), view, NODES, TABLE, POLICY, at(11)).record
    assert settled.finished_at == at(10)
    assert view.deletion_deadline == at(40)


def test_finish_times_are_never_in_the_future() -> None:
    view = pod("p", phase="Failed", node="gpu-a", started=2, finished=100, exit_code=1)
    assert observe(fresh(), view, NODES, TABLE, POLICY, at(50)).record.finished_at == at(50)


def test_the_factor_is_fixed_on_first_sight_of_the_node() -> None:
    record = observe(
        fresh(), pod("p", phase="Running", node="gpu-x", started=1), NODES, TABLE, POLICY, at(2)
    ).record
    assert (record.gpu_product, record.calibration_factor) == (None, 1.0)  # unlabelled: default
    moved = observe(
        record, pod("p", phase="Running", node="gpu-h", started=1), NODES, TABLE, POLICY, at(3)
    ).record
    assert moved.calibration_factor == 1.0


def test_the_trainer_result_is_read_from_json_and_logs_are_not() -> None:
    read = read_result('{"exit": "SUCCESS", "metrics": {"top1": 0.5}}')
    assert read is not None
    assert read.metrics == {"top1": 0.5}
    assert read_result("Traceback (most recent call last): ...") is None
    assert read_result('{"exit": "SUCCESS", "unknown_field": 1}') is None
    assert read_result("") is None


def test_a_crash_keeps_the_tail_of_its_logs_as_the_message() -> None:
    view = pod(
        "p",
        phase="Failed",
        node="gpu-a",
        started=1,
        finished=2,
        exit_code=1,
        message="line\n" * 200 + "RuntimeError: CUDA error",
    )
    record = observe(fresh(), view, NODES, TABLE, POLICY, at(3)).record
    assert record.message.endswith("RuntimeError: CUDA error")
    assert len(record.message) <= 512


def test_allowance_deadline_uses_gpus_and_factor() -> None:
    record = fresh(gpus=2, calibration_factor=2.0, started_at=at(10), allowance_gpu_seconds=400)
    assert allowance_deadline(record, POLICY) == at(10 + 100 + 30)
    assert allowance_deadline(fresh(), POLICY) is None


@pytest.mark.parametrize(
    ("view", "now", "stop"),
    [
        (pod("p", phase="Running", node="gpu-a", started=0), 129, None),
        (pod("p", phase="Running", node="gpu-a", started=0), 130, StopRequest.ALLOWANCE_EXCEEDED),
        (
            pod("p", phase="Pending", node="gpu-a", scheduled=0, waiting="ErrImagePull"),
            60,
            StopRequest.IMAGE_PULL_FAILED,
        ),
        (
            pod("p", phase="Pending", node="gpu-a", scheduled=0, waiting="ContainerCreating"),
            600,
            None,
        ),
        (pod("p", phase="Running", node="vanished", started=0), 1, StopRequest.NODE_LOST),
    ],
)
def test_needed_stop(view, now, stop) -> None:
    record = fresh(started_at=at(0) if view.started_at else None, calibration_factor=1.0)
    assert needed_stop(record, view, NODES, POLICY, at(now))[0] == stop
