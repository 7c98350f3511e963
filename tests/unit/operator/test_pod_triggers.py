"""Which pod events wake their job: only those that change what the plan can see."""

from tailor_operator.handlers import PodTriggers
from tests.unit.operator.factories import pod_json


def test_the_first_sight_of_a_pod_wakes_its_job_and_a_repeat_does_not() -> None:
    triggers = PodTriggers()
    assert triggers.wakes("team-a", pod_json("p1"))
    assert not triggers.wakes("team-a", pod_json("p1"))


def test_an_annotation_or_pod_ip_alone_wakes_nobody() -> None:
    triggers = PodTriggers()
    body = pod_json("p1", node="gpu-a", scheduled=1, started=2, phase="Running")
    assert triggers.wakes("team-a", body)
    body["metadata"]["annotations"] = {"kwok.tailor.dev/exit-code": "0"}
    body["status"]["podIP"] = "10.244.0.7"
    body["status"]["conditions"].append({"type": "Ready", "status": "True"})
    assert not triggers.wakes("team-a", body)


def test_every_change_the_plan_reads_wakes_the_job() -> None:
    triggers = PodTriggers()
    steps = [
        pod_json("p1"),
        pod_json("p1", node="gpu-a", scheduled=1),
        pod_json("p1", node="gpu-a", scheduled=1, waiting="ContainerCreating"),
        pod_json("p1", node="gpu-a", scheduled=1, started=2, phase="Running"),
        pod_json("p1", node="gpu-a", scheduled=1, started=2, phase="Running", disruption="Evict"),
        pod_json("p1", node="gpu-a", started=2, finished=9, exit_code=143, phase="Failed"),
        pod_json("p1", node="gpu-a", started=2, finished=9, exit_code=143, deleting=10),
        pod_json("p1", node="gpu-a", started=2, finished=9, exit_code=143, finalizer=False),
    ]
    assert [triggers.wakes("team-a", body) for body in steps] == [True] * len(steps)


def test_deletion_always_wakes_and_forgets_the_pod() -> None:
    triggers = PodTriggers()
    body = pod_json("p1")
    assert triggers.wakes("team-a", body)
    assert triggers.wakes("team-a", body, deleted=True)
    assert triggers.wakes("team-a", body)  # recreated under the same name


def test_pods_are_told_apart_by_namespace() -> None:
    triggers = PodTriggers()
    assert triggers.wakes("team-a", pod_json("p1"))
    assert triggers.wakes("team-b", pod_json("p1"))


def test_a_pod_that_cannot_be_read_wakes_its_job_every_time() -> None:
    triggers = PodTriggers()
    body = pod_json("p1", started=1, finished=2, exit_code=0, phase="Succeeded")
    body["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = "not a number"
    assert triggers.wakes("team-a", body)
    assert triggers.wakes("team-a", body)
