"""The pod status the node agent writes reads like a kubelet's to the operator."""

from datetime import UTC, datetime
from typing import Any

import pytest

from tailor_contract import AttemptResult
from tailor_devcluster.nodeagent.status import (
    FALLBACK_LOG_BYTES,
    TERMINATION_MESSAGE_LIMIT,
    Exit,
    exit_of,
    lost_status,
    rejected_status,
    running_status,
    terminated_status,
    termination_message,
    timestamp,
    waiting_status,
)
from tailor_operator.core.observe import parse_pod

START = datetime(2026, 3, 1, 12, 0, 0, 900_000, tzinfo=UTC)
END = datetime(2026, 3, 1, 12, 1, 30, 100_000, tzinfo=UTC)


def pod(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "digits-t0-1-abcde",
            "namespace": "demo",
            "uid": "u1",
            "labels": {"tailor.dev/trial": "t0", "tailor.dev/attempt": "1"},
        },
        "spec": {"nodeName": "tailor-agent", "containers": [{"name": "trainer", "image": "img"}]},
        "status": status or {},
    }


@pytest.mark.parametrize(
    ("returncode", "expected"),
    [
        (0, Exit(0, "Completed")),
        (75, Exit(75, "Error")),
        (-15, Exit(143, "Error")),  # killed by SIGTERM: 128 + 15, as runtimes report
        (-9, Exit(137, "Error")),
    ],
)
def test_exit_codes_as_a_container_runtime_reports_them(returncode, expected):
    assert exit_of(returncode) == expected


def test_timestamps_are_utc_seconds():
    assert timestamp(START) == "2026-03-01T12:00:00Z"


def test_running_then_terminated_is_what_the_operator_reads():
    running = parse_pod(pod(running_status(pod(), START, "local-process://7")))
    assert running.phase == "Running"
    assert running.started_at == START.replace(microsecond=0)
    assert running.end is None

    message = AttemptResult(
        exit="SUCCESS", metrics={"top1_accuracy": 0.99}
    ).to_termination_message()
    status = terminated_status(
        pod(), START, END, Exit(0, "Completed"), message, "local-process://7"
    )
    done = parse_pod(pod(status))
    assert done.phase == "Succeeded"
    assert done.terminal
    assert done.end is not None
    assert done.end.exit_code == 0
    assert done.end.message == message
    # The operator charges finished - started: the seconds the process ran, to the second.
    assert done.end.finished_at is not None
    assert done.end.started_at is not None
    assert (done.end.finished_at - done.end.started_at).total_seconds() == 90


def test_a_failed_exit_is_a_failed_pod_with_its_reason():
    status = terminated_status(pod(), START, END, Exit(143, "Error"), "", "local-process://7")
    view = parse_pod(pod(status))
    assert view.phase == "Failed"
    assert view.end is not None
    assert (view.end.exit_code, view.end.reason) == (143, "Error")
    assert "message" not in status["containerStatuses"][0]["state"]["terminated"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_conditions_of_others_are_not_written():
    # Written as a strategic merge patch keyed by type: DisruptionTarget and
    # PodScheduled stay as the API server and the scheduler set them.
    for status in (
        running_status(pod(), START, "c"),
        terminated_status(pod(), START, END, Exit(0, "Completed"), "", "c"),
        waiting_status(pod(), "CreateContainerConfigError", "m", START),
    ):
        kinds = {c["type"] for c in status["conditions"]}
        assert not kinds & {"DisruptionTarget", "PodScheduled"}


def test_a_configuration_error_waits_with_the_kubelets_reason():
    status = waiting_status(pod(), "CreateContainerConfigError", 'secret "s3" not found', START)
    view = parse_pod(pod(status))
    assert view.phase == "Pending"
    assert view.waiting_reason == "CreateContainerConfigError"
    assert view.waiting_message == 'secret "s3" not found'
    assert view.started_at is None


def test_rejected_and_lost_pods_fail():
    assert rejected_status("OutOfnvidia.com/gpu", "no room") == {
        "phase": "Failed",
        "reason": "OutOfnvidia.com/gpu",
        "message": "no room",
    }
    lost = parse_pod(pod(lost_status(pod(), START, END, "local-process://lost")))
    assert lost.phase == "Failed"
    assert lost.end is not None
    assert lost.end.reason == "ContainerStatusUnknown"


def test_the_termination_message_is_capped_and_falls_back_to_the_log_on_error():
    assert termination_message("x" * 5000, "", "File", 0) == "x" * TERMINATION_MESSAGE_LIMIT
    log = "\n".join(f"line {i}" for i in range(1000))
    fallback = termination_message("", log, "FallbackToLogsOnError", 1)
    assert fallback.endswith("line 999")
    assert len(fallback.encode()) <= FALLBACK_LOG_BYTES
    # Success, or another policy: what was written, even nothing.
    assert termination_message("", log, "FallbackToLogsOnError", 0) == ""
    assert termination_message("", log, "File", 1) == ""
    assert termination_message("done", log, "FallbackToLogsOnError", 1) == "done"
