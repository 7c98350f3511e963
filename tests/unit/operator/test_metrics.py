"""Prometheus counters mirror the ledger: each settled line is counted once."""

import platform

from prometheus_client import CollectorRegistry

from tailor_operator.core.status import JobPhase, TrainingJobStatus
from tailor_operator.metrics import Metrics
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_plan_flow import result, validated


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_counters_follow_settled_lines_once_and_gauges_follow_the_job() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sim = Sim()
    validated(sim)
    (name,) = sim.pod_names("t0")
    sim.run(name, "gpu-h", 10)
    sim.finish(name, 0, 110, message=result(top1=0.5))
    before = sim.status
    sim.step(111)
    after = sim.status
    metrics.record("team-a", "insects", before, after)
    metrics.record("team-a", "insects", after, after)  # a replay settles nothing new
    charged = value(
        registry,
        "tailor_gpu_seconds_charged_total",
        namespace="team-a",
        gpu_type="NVIDIA-H100-80GB-HBM3",
    )
    assert charged == 200
    assert value(registry, "tailor_attempts_total", namespace="team-a", outcome="Completed") == 1
    assert (
        value(
            registry, "tailor_budget_charged_gpu_seconds", namespace="team-a", trainingjob="insects"
        )
        == 200
    )
    assert value(registry, "tailor_trainingjobs", namespace="team-a", phase="Succeeded") == 1
    metrics.forget("team-a", "insects")
    assert (
        registry.get_sample_value(
            "tailor_budget_charged_gpu_seconds", {"namespace": "team-a", "trainingjob": "insects"}
        )
        is None
    )
    assert value(registry, "tailor_trainingjobs", namespace="team-a", phase="Succeeded") == 0
    (build,) = [s for m in registry.collect() if m.name == "tailor_build_info" for s in m.samples]
    assert build.value == 1
    assert build.labels["python"] == platform.python_version()


def test_a_job_moving_between_phases_is_counted_in_one_phase() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.observe("ns", "a", TrainingJobStatus(phase=JobPhase.VALIDATING))
    metrics.observe("ns", "a", TrainingJobStatus(phase=JobPhase.TRAINING))
    metrics.observe("ns", "b", TrainingJobStatus(phase=JobPhase.TRAINING))
    assert value(registry, "tailor_trainingjobs", namespace="ns", phase="Validating") == 0
    assert value(registry, "tailor_trainingjobs", namespace="ns", phase="Training") == 2
