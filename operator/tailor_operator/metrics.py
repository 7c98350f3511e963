"""Prometheus metrics: base units, the tailor_ prefix, bounded labels.

Per-job gauges carry the job's name and are removed when the job goes, so their
label set stays as large as the set of live TrainingJobs and no larger.
"""

import contextlib
import platform
import threading
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tailor_operator.core.events import settled_lines
from tailor_operator.core.status import TrainingJobStatus


def _version() -> str:
    try:
        return metadata.version("tailor")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.charged = Counter(
            "tailor_gpu_seconds_charged",
            "Calibrated GPU-seconds charged to budgets",
            ["namespace", "gpu_type"],
            registry=registry,
        )
        self.waived = Counter(
            "tailor_gpu_seconds_waived",
            "Calibrated GPU-seconds recorded but not charged",
            ["namespace", "gpu_type", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "tailor_attempts",
            "Attempts settled, by outcome",
            ["namespace", "outcome"],
            registry=registry,
        )
        self.limit = Gauge(
            "tailor_budget_limit_gpu_seconds",
            "Budget of a TrainingJob",
            ["namespace", "trainingjob"],
            registry=registry,
        )
        self.used = Gauge(
            "tailor_budget_charged_gpu_seconds",
            "GPU-seconds charged to a TrainingJob",
            ["namespace", "trainingjob"],
            registry=registry,
        )
        self.reserved = Gauge(
            "tailor_budget_reserved_gpu_seconds",
            "GPU-seconds reserved by running attempts",
            ["namespace", "trainingjob"],
            registry=registry,
        )
        self.jobs = Gauge(
            "tailor_trainingjobs",
            "TrainingJobs by phase",
            ["namespace", "phase"],
            registry=registry,
        )
        self.reconcile = Histogram(
            "tailor_reconcile_duration_seconds",
            "Time to reconcile one TrainingJob",
            ["result"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.build = Gauge(
            "tailor_build_info", "The operator's version", ["version", "python"], registry=registry
        )
        self.build.labels(_version(), platform.python_version()).set(1)
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}

    def record(
        self, namespace: str, name: str, old: TrainingJobStatus, new: TrainingJobStatus
    ) -> None:
        """Mirror a status write: counters for lines settled by it, gauges for the job."""
        for line in settled_lines(old, new):
            gpu_type = line.gpu_product or "unknown"
            outcome = line.outcome.value if line.outcome else "Unknown"
            if line.charged_gpu_seconds:
                self.charged.labels(namespace, gpu_type).inc(line.charged_gpu_seconds)
            if line.waived_gpu_seconds:
                self.waived.labels(namespace, gpu_type, outcome).inc(line.waived_gpu_seconds)
            self.attempts.labels(namespace, outcome).inc()
        self.observe(namespace, name, new)

    def observe(self, namespace: str, name: str, status: TrainingJobStatus) -> None:
        self.limit.labels(namespace, name).set(status.budget.limit_gpu_seconds)
        self.used.labels(namespace, name).set(status.budget.charged_gpu_seconds)
        self.reserved.labels(namespace, name).set(status.budget.reserved_gpu_seconds)
        self._set_phase(namespace, name, status.phase.value)

    def forget(self, namespace: str, name: str) -> None:
        for gauge in (self.limit, self.used, self.reserved):
            with contextlib.suppress(KeyError):  # never set: nothing to remove
                gauge.remove(namespace, name)
        self._set_phase(namespace, name, None)

    def _set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            before = self._phases.pop((namespace, name), None)
            if phase is not None:
                self._phases[(namespace, name)] = phase
            if before == phase:
                return
            if before is not None:
                self.jobs.labels(namespace, before).dec()
            if phase is not None:
                self.jobs.labels(namespace, phase).inc()
