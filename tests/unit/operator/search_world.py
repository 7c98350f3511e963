"""A simulated world for the search: the real plan() through Sim, and trials whose
learning curves, timings and failures are drawn from a seed.

Each trial's quality depends on its configuration (the learning rate near a sweet
spot, the backbone, the augmentation), so a search can find better ones; a run costs
what the world says (its fixed seconds and seconds per epoch are off from the
search's prior by a drawn factor), and the trainer stops itself at its allowance,
as the real one does. Time is whole seconds, as in Kubernetes timestamps.
"""

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from tailor_contract import PRIMARY_METRIC, AttemptResult, DatasetFacts, PretrainedBackbone
from tailor_contract.backbones import Task
from tailor_contract.cost import epoch_gpu_seconds, find_backbone
from tailor_operator.core.planner import TrialPlanner
from tailor_operator.core.status import JobPhase, TrainingJobStatus
from tests.unit.operator.sim import Sim

STEPS_PER_EPOCH = 100


@dataclass(frozen=True)
class Behaviour:
    """How the simulated world differs from the search's prior, and how it fails."""

    overhead_ratio: float = 1.0  # true fixed seconds / prior
    speed_ratio: float = 1.0  # true seconds per epoch / prior
    evict: float = 0.0  # chance an attempt is evicted mid-run
    crash: float = 0.0  # chance it crashes (exit 1) early
    diverge_lr: float = 1.0  # learning rates at or above this diverge
    ceiling: float = 0.95  # the best any configuration reaches
    flat: bool = False  # every configuration reaches the same metric
    noise: float = 0.0


@dataclass
class Run:
    name: str
    trial: str
    ends: int
    exit_code: int
    epochs_after: float  # what the trial's checkpoint holds when it ends
    started: int
    message: str | None
    evicted: bool = False


@dataclass
class SearchWorld:
    planner: TrialPlanner
    facts: DatasetFacts
    budget_hours: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    parallel: int = 2
    max_gpus: int = 1
    seed: int = 0  # the world's draws
    job_uid: str | None = None  # the search's seed derives from it
    task: Task = "classification"
    catalog: tuple[PretrainedBackbone, ...] = ()  # offered, and verified by validation

    def __post_init__(self) -> None:
        self.sim = Sim(
            planner=self.planner,
            catalog=self.catalog,
            task=self.task,
            budget={"gpuHours": self.budget_hours},
            resources={"maxParallelTrials": self.parallel, "maxGpusPerTrial": self.max_gpus},
        )
        self.metric_name = PRIMARY_METRIC[self.task]
        if self.job_uid is not None:
            self.sim.job["metadata"]["uid"] = self.job_uid
        self.rng = random.Random(self.seed)
        self.now = 0
        self.runs: dict[str, Run] = {}
        self.checkpoints: dict[str, float] = {}  # trial -> epochs its checkpoint holds
        self.steps: list[TrainingJobStatus] = []

    # -- the world's truth ----------------------------------------------------
    def quality(self, model: str, hp: dict[str, Any]) -> float:
        """The metric a configuration converges to."""
        b = self.behaviour
        if b.flat:
            return b.ceiling
        lr_miss = abs(math.log10(float(hp.get("lr", 1e-3))) - math.log10(2e-3))
        aug_miss = abs(float(hp.get("augmentation", 0.5)) - 0.3)
        size = find_backbone(model, self.task).relative_cost
        capacity = 0.05 * min(1.0, math.log10(1 + 10 * size))
        return max(0.05, b.ceiling - 0.15 * lr_miss**2 - 0.08 * aug_miss + capacity - 0.05)

    def metric(self, model: str, hp: dict[str, Any], epochs: float) -> float:
        tau = 3.0 + find_backbone(model, self.task).relative_cost
        value = self.quality(model, hp) * (1 - math.exp(-epochs / tau))
        value += self.rng.uniform(-1, 1) * self.behaviour.noise
        return min(1.0, max(0.0, value))

    def epoch_seconds(self, model: str, side: int, gpus: int) -> float:
        backbone = find_backbone(model, self.task)
        prior = epoch_gpu_seconds(self.facts, backbone, side, gpus, task=self.task)
        return prior * self.behaviour.speed_ratio / gpus  # wall seconds

    # -- pods -------------------------------------------------------------------
    def _start(self, name: str) -> None:
        config = self.sim.config(name)
        trial, gpus, hp = config["trial"], config["gpus"], config["hyperparameters"]
        start = self.now + 1
        self.sim.run(name, "gpu-a", start)  # factor 1.0: wall seconds x GPUs = GPU-seconds
        if trial == "validate":
            verified = [e.name for e in self.catalog]
            result = AttemptResult(exit="SUCCESS", dataset=self.facts, verified_backbones=verified)
            message = result.to_termination_message()
            self.runs[name] = Run(name, trial, start + 4, 0, 0.0, start, message)
            return
        before = self.checkpoints.get(trial, 0.0)
        overhead = 120.0 * self.behaviour.overhead_ratio
        per_epoch = self.epoch_seconds(config["model"], int(hp.get("input_size", 224)), gpus)
        budget_wall = config["allowance_gpu_seconds"] / gpus * 0.98  # it stops itself
        wanted = max(0.0, float(hp["epochs"]) - before)
        fit = max(0.0, (budget_wall - overhead) / per_epoch)
        epochs = min(wanted, fit)
        seconds = max(1, math.ceil(min(overhead + epochs * per_epoch, budget_wall)))
        b = self.behaviour
        if float(hp.get("lr", 0)) >= b.diverge_lr:
            self.runs[name] = Run(name, trial, start + seconds // 3 + 1, 68, before, start, None)
            return
        draw = self.rng.random()
        if draw < b.crash:
            self.runs[name] = Run(name, trial, start + seconds // 2 + 1, 1, before, start, None)
            return
        if draw < b.crash + b.evict:
            cut = self.rng.uniform(0.1, 0.9)
            partial = before + epochs * cut  # checkpointed on SIGTERM
            run = Run(name, trial, start + max(1, int(seconds * cut)), 143, partial, start, None)
            run.evicted = True
            self.runs[name] = run
            return
        after = before + epochs
        message = self._result(config, hp, before, after)
        self.runs[name] = Run(name, trial, start + seconds, 0, after, start, message)

    def _result(
        self,
        config: dict[str, Any],
        hp: dict[str, Any],
        before: float,
        after: float,
        export: bool = True,
    ) -> str:
        """What the trainer reports: the metrics of the weights it exported, and where."""
        uri = config["output"] + "export/"
        digest = "sha256:" + hashlib.sha256(f"{uri}{after}".encode()).hexdigest()
        return AttemptResult(
            exit="SUCCESS",
            metrics={self.metric_name: self.metric(config["model"], hp, after)},
            export_uri=uri if export else None,
            export_digest=digest if export else None,
            steps=max(1, round(after * STEPS_PER_EPOCH)),
            epochs=round(after, 4),
            resumed_from_step=round(before * STEPS_PER_EPOCH) if before else None,
            primary_metric=self.metric_name,
        ).to_termination_message()

    def _stopped(self, run: Run) -> None:
        """The operator deleted a running pod: the trainer checkpoints and exits 75."""
        config = self.sim.config(run.name)
        before = self.checkpoints.get(run.trial, 0.0)
        share = (self.now - run.started) / max(1, run.ends - run.started)
        after = before + (run.epochs_after - before) * min(1.0, share)
        run.epochs_after, run.ends, run.exit_code = after, self.now + 1, 75
        # Stopped by SIGTERM: interim metrics and a checkpoint, no export.
        run.message = self._result(config, config["hyperparameters"], before, after, export=False)

    def _finish(self, run: Run) -> None:
        if run.evicted:
            self.sim.evict(run.name, run.ends)
        self.sim.finish(run.name, run.exit_code, run.ends, message=run.message)
        if run.trial != "validate":
            self.checkpoints[run.trial] = run.epochs_after
        del self.runs[run.name]

    # -- the loop ---------------------------------------------------------------
    def run(self, max_steps: int = 3000) -> TrainingJobStatus:
        for _ in range(max_steps):
            plan = self.sim.step(self.now)
            status = self.sim.status
            self.steps.append(status)
            for name, pod in self.sim.pods.items():
                if name in self.runs:
                    if pod["metadata"].get("deletionTimestamp") and self.runs[name].exit_code == 0:
                        self._stopped(self.runs[name])
                elif not (
                    pod["status"].get("containerStatuses")
                    or pod["metadata"].get("deletionTimestamp")
                ):
                    self._start(name)
            if status.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED) and not self.runs:
                return status
            moments = [r.ends for r in self.runs.values()]
            if plan.requeue_after is not None:
                moments.append(self.now + max(1, math.ceil(plan.requeue_after)))
            self.now = max(self.now + 1, min(moments, default=self.now + 60))
            for run in sorted(self.runs.values(), key=lambda r: r.name):
                if run.ends <= self.now:
                    self._finish(run)
        raise AssertionError(f"no end after {max_steps} steps: {self.sim.status.message}")

    def fingerprint(self) -> str:
        return json.dumps(self.sim.job["status"], sort_keys=True)

    def configurations(self) -> list[tuple[str, str]]:
        """Each trial's backbone and knobs (not its epochs, which follow its rungs)."""
        return [
            (t.model, json.dumps(t.hyperparameters | {"epochs": None}, sort_keys=True))
            for t in self.sim.status.trials
        ]
