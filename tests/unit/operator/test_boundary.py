"""The tenant boundary: the platform's allow-lists, checked before any pod exists."""

from dataclasses import replace
from typing import Any

import pytest

from tailor_operator.core.boundary import boundary_problem, endpoint_origin
from tailor_operator.core.policy import Policy
from tailor_operator.core.status import AttemptPhase, JobPhase
from tests.unit.operator.factories import POLICY, job
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_plan_flow import condition, validated

MINIO = "http://minio.storage:9000"
LOCKED = replace(
    POLICY,
    allowed_endpoints=(MINIO, "https://s3.example.com"),
    allowed_priority_classes=("batch-low", "batch-high"),
    allowed_toleration_keys=("nvidia.com/gpu",),
)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://minio.storage:9000", "http://minio.storage:9000"),
        ("http://MinIO.Storage:9000/", "http://minio.storage:9000"),
        ("https://s3.example.com", "https://s3.example.com:443"),
        ("http://s3.example.com", "http://s3.example.com:80"),
        ("http://[fd00::1]:9000", "http://[fd00::1]:9000"),
        # Anything that may reach another host than it seems to, or is more than an origin.
        ("http://minio.storage:9000@evil.example", None),
        ("http://user:pass@minio.storage:9000", None),
        ("http://minio.storage:9000/bucket", None),
        ("http://minio.storage:9000?x=1", None),
        ("http://minio.storage:9000#x", None),
        ("http://minio.storage:port", None),
        ("ftp://minio.storage", None),
        ("minio.storage:9000", None),
        ("", None),
    ],
)
def test_endpoint_origin(url: str, origin: str | None) -> None:
    assert endpoint_origin(url) == origin


def resources(**fields: Any) -> dict[str, Any]:
    return {"resources": fields}


def dataset(endpoint: str | None) -> dict[str, Any]:
    body = {"train": "s3://data/insects/train.json", "credentialsSecret": "s3-creds"}
    return {"dataset": body | ({"endpoint": endpoint} if endpoint else {})}


TOLERATE_GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# (case, policy, spec overrides, the words of the problem or None)
CASES: list[tuple[str, Policy, dict[str, Any], str | None]] = [
    ("no lists: anything", POLICY, dataset("http://evil.example:9000"), None),
    ("no lists: any class", POLICY, resources(priorityClassName="system-node-critical"), None),
    ("no lists: keyless toleration", POLICY, resources(tolerations=[{"operator": "Exists"}]), None),
    ("allowed endpoint", LOCKED, dataset(MINIO), None),
    ("same origin, other spelling", LOCKED, dataset("http://MINIO.storage:9000/"), None),
    ("default https port", LOCKED, dataset("https://s3.example.com:443"), None),
    ("no endpoint: the SDK's default", LOCKED, dataset(None), None),
    (
        "other host",
        LOCKED,
        dataset("http://evil.example:9000"),
        "spec.dataset.endpoint: 'http://evil.example:9000' is not an endpoint this cluster "
        "sends credentials to (allowed: http://minio.storage:9000, https://s3.example.com)",
    ),
    ("other port", LOCKED, dataset("http://minio.storage:9001"), "spec.dataset.endpoint"),
    ("other scheme", LOCKED, dataset("https://minio.storage:9000"), "spec.dataset.endpoint"),
    ("user info", LOCKED, dataset(f"{MINIO}@evil.example"), "spec.dataset.endpoint"),
    ("a path", LOCKED, dataset(f"{MINIO}/other"), "spec.dataset.endpoint"),
    (
        "empty list: no endpoint at all",
        replace(POLICY, allowed_endpoints=()),
        dataset(MINIO),
        "(allowed: none)",
    ),
    ("allowed class", LOCKED, resources(priorityClassName="batch-high"), None),
    ("no class: the cluster's default", LOCKED, resources(), None),
    (
        "other class",
        LOCKED,
        resources(priorityClassName="system-node-critical"),
        "spec.resources.priorityClassName: 'system-node-critical' is not allowed in this "
        "cluster (allowed: batch-low, batch-high)",
    ),
    ("allowed toleration", LOCKED, resources(tolerations=[TOLERATE_GPU]), None),
    (
        "other key",
        LOCKED,
        resources(tolerations=[TOLERATE_GPU, {"key": "dedicated", "value": "team-b"}]),
        "spec.resources.tolerations[1].key: 'dedicated' is not allowed in this cluster "
        "(allowed: nvidia.com/gpu)",
    ),
    (
        "keyless toleration",
        LOCKED,
        resources(tolerations=[{"operator": "Exists"}]),
        "spec.resources.tolerations[0]: a toleration without a key tolerates every taint",
    ),
    (
        "the first problem is named",
        LOCKED,
        dataset("http://evil.example") | resources(priorityClassName="x"),
        "spec.dataset.endpoint",
    ),
]


@pytest.mark.parametrize(
    ("policy", "overrides", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_boundary_problem(policy: Policy, overrides: dict[str, Any], words: str | None) -> None:
    problem = boundary_problem(job(**overrides).spec, policy)
    if words is None:
        assert problem is None
    else:
        assert problem is not None
        assert words in problem


def test_a_job_outside_the_boundary_stays_pending_and_gets_no_pod() -> None:
    sim = Sim(policy=LOCKED, **dataset("http://evil.example:9000"))
    result = sim.step(0)
    assert result.creates == ()
    assert sim.status.phase == JobPhase.PENDING
    assert sim.status.reason == "InvalidSpec"
    assert "spec.dataset.endpoint" in sim.status.message
    assert condition(sim, "Stalled") == ("True", "InvalidSpec")
    # The user's to fix: with an allowed endpoint, validation starts.
    sim.job["spec"]["dataset"]["endpoint"] = MINIO
    sim.step(1)
    assert sim.pod_names("validate") != []


def test_a_running_job_that_crosses_the_boundary_gets_no_new_pod() -> None:
    # spec.resources may change after training started, and the platform may narrow
    # its lists: the boundary holds for every pod, also one reserved before.
    sim = Sim(policy=LOCKED, **resources(priorityClassName="batch-low"))
    validated(sim)
    (name,) = sim.pod_names("t0")
    del sim.pods[name], sim.config_maps[name]  # reserved, then a crash before the create
    sim.job["spec"]["resources"]["priorityClassName"] = "system-node-critical"
    result = sim.step(10)
    assert result.creates == () == result.deletes
    assert sim.status.reason == "InvalidSpec"
    assert "spec.resources.priorityClassName" in sim.status.message
    (record,) = sim.status.trials[0].attempts
    assert record.phase == AttemptPhase.CREATING  # kept, with its reservation
    sim.job["spec"]["resources"]["priorityClassName"] = "batch-low"
    sim.step(11)
    assert sim.pods[name]["spec"]["priorityClassName"] == "batch-low"
