"""The three methods under one ledger rule: the search (AutoMLPlanner, driven the way the
operator drives it), random search over the same space, and the fixed default recipe.

Each attempt is a `tailor-train run` process given its allowance, as the operator gives
it (the trainer fits its schedule to it and stops itself by wall time); it is charged
its CPU seconds, at most its allowance, and stopped with SIGTERM past it (the operator's
backstop)."""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Semaphore
from typing import Protocol

from bench.automl.digits import METRIC
from tailor_contract import AttemptResult, DatasetFacts, DatasetRef, PretrainedBackbone, TrialConfig
from tailor_contract.cost import CostModel, full_epochs
from tailor_devcluster.demo.stack import CPU_SLOT_SECONDS
from tailor_operator.core.ledger import totals
from tailor_operator.core.planner import PlannerView
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.cost import CostEstimator
from tailor_operator.core.search.space import Config, build_space
from tailor_operator.core.spec import TrainingJobSpec
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    Billing,
    DatasetSummary,
    TrialState,
    TrialStatus,
)
from tailor_operator.core.status import Outcome as Outcome_
from tailor_operator.core.trials import apply_decision

# The search is priced as the demo prices a CPU slot (CPU_SLOT_SECONDS, in the CPU-seconds
# this runner charges; until 2026-12-06 it priced an attempt's fixed costs at 5 s, so the
# search's shortest rungs bought a few seconds of training). The search corrects them
# from the timings runs report, as it does on GPUs.
TICKS = os.sysconf("SC_CLK_TCK")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Data(Protocol):
    """A benchmark dataset in COCO form: train.json (and test.json) under root."""

    root: Path
    facts: DatasetFacts

    @property
    def evaluation(self) -> str | None:
        """The evaluation split's file; None: the trainer holds out its own share."""

    @property
    def train(self) -> int: ...


@dataclass
class Outcome:
    val: float = 0.0
    test: float = 0.0
    charged: float = 0.0
    limit: float = 0.0
    runs: int = 0
    best_output: str | None = None
    note: str = ""
    trials: list[str] = field(default_factory=list)  # one line per trial: what it ran, scored


@dataclass
class Books:
    """One method's ledger and runner: each attempt charged at most its allowance, and
    no allowance above what the limit has left."""

    limit: float
    slots: Semaphore
    folder: Path
    seed: int
    charged: float = 0.0
    crashes: int = 0  # waived, as the operator waives them
    clock: float = 0.0  # simulated: the sum of what the attempts used
    runs: int = 0

    def run(
        self,
        data: Data,
        name: str,
        model: str,
        hp: dict,
        allowance: float,
        number: int,
        backbone: PretrainedBackbone | None = None,
    ):
        allowance = min(allowance, self.limit - self.charged)
        output = self.folder / name
        config = TrialConfig(
            job="bench/digits",
            job_uid="bench-digits",  # one job: promotions resume their trial
            trial=name,
            attempt=number,
            task="classification",
            dataset=DatasetRef(train=str(data.root / "train.json"), evaluation=data.evaluation),
            model=model,
            backbone=backbone,
            hyperparameters=hp | {"workers": 0, "log_every_steps": 10_000},
            # Its own allowance, as the operator gives it: the trainer fits its schedule
            # to it and stops itself by wall time, never later than the CPU time below.
            allowance_gpu_seconds=allowance,
            calibration_factor=1.0,
            gpus=0,
            output=f"{output}/",
            seed=self.seed,
            metrics_port=0,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}-{number}.json"
        path.write_text(config.model_dump_json())
        log = self.folder / f"{name}-{number}.termination"
        env = os.environ | {"TAILOR_TERMINATION_LOG": str(log), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "tailor_trainer", "run", "--config", str(path)]
        with self.slots:
            # Held until reaped: a Popen collected while its child runs is reaped by the
            # next Popen's cleanup in another thread, and our wait4 finds no child.
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            pid = process.pid
            stopped = False
            while True:  # wait4, not Popen.wait: the rusage is the process's own CPU time
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here
                    break
                if not stopped and _cpu(pid) > allowance:
                    os.kill(pid, signal.SIGTERM)  # it checkpoints and exits 75
                    stopped = True
                time.sleep(0.2)
        used = usage.ru_utime + usage.ru_stime
        text = log.read_text() if log.exists() else ""
        result = AttemptResult.model_validate_json(text) if text.startswith("{") else None
        # As the operator's ledger classifies: what the trainer said, then the stop.
        code = os.waitstatus_to_exitcode(status)
        if code in (0, 68):
            outcome = Outcome_.COMPLETED if code == 0 else Outcome_.DIVERGED
        else:
            outcome = Outcome_.STOPPED_AT_ALLOWANCE if stopped else Outcome_.CRASHED
        # Crashes are waived, as the operator waives them; rounded as the ledger rounds.
        charge = 0.0 if outcome == Outcome_.CRASHED else round(min(used, allowance), 3)
        self.charged += charge
        self.runs += 1
        self.crashes += outcome == Outcome_.CRASHED
        started, self.clock = self.clock, self.clock + used
        record = AttemptRecord(
            attempt=number,
            pod=f"{name}-{number}",
            phase=AttemptPhase.FINISHED,
            created_at=T0 + timedelta(seconds=started),
            started_at=T0 + timedelta(seconds=started),
            finished_at=T0 + timedelta(seconds=self.clock),
            gpus=1,
            calibration_factor=1.0,
            allowance_gpu_seconds=allowance,
            outcome=outcome,
            billing=Billing.WAIVED if outcome == Outcome_.CRASHED else Billing.CHARGED,
            gpu_seconds=round(used, 3),
            charged_gpu_seconds=round(charge, 3),
            metrics=dict(result.metrics) if result else {},
            epochs=result.epochs if result and result.epochs else None,
        )
        return record, str(output)


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _epochs(data: Data, config: Config, allowance: float) -> float:
    estimate = CostEstimator(data.facts, CPU_SLOT_SECONDS)
    planned = estimate.epochs_for(config.model, config.input_size, 1, allowance)
    return round(max(0.5, min(full_epochs(data.train), planned)), 2)


def run_fixed(data: Data, budget: float, seed: int, folder: Path, slots: Semaphore) -> Outcome:
    """The search's own default recipe, trained once with the whole budget."""
    books = Books(budget, slots, folder, seed)
    config = build_space(data.facts).default()
    hp = config.hyperparameters(_epochs(data, config, budget))
    record, output = books.run(data, "fixed", config.model, hp, budget, 1)
    value = record.metrics.get(METRIC, 0.0)
    note = config.model + (f"; {books.crashes} crashed" if books.crashes else "")
    return Outcome(value, 0.0, books.charged, budget, books.runs, output, note)


def run_random(
    data: Data, budget: float, seed: int, folder: Path, slots: Semaphore, trials: int
) -> Outcome:
    """Configurations drawn from the same space, each given an equal share."""
    books = Books(budget, slots, folder, seed)
    space = build_space(data.facts)
    rng = random.Random(f"random-search:{seed}")
    best = Outcome(limit=budget)
    for index in range(trials):
        config = space.sample(rng)
        share = (budget - books.charged) / (trials - index)
        hp = config.hyperparameters(_epochs(data, config, share))
        record, output = books.run(data, f"r{index}", config.model, hp, share, 1)
        value = record.metrics.get(METRIC, 0.0)
        if value > best.val:
            best.val, best.best_output, best.note = value, output, config.model
    best.charged, best.runs = books.charged, books.runs
    best.note += f"; {books.crashes} crashed" if books.crashes else ""
    return best


def run_automl(
    data: Data,
    budget: float,
    seed: int,
    folder: Path,
    slots: Semaphore,
    catalog: Sequence[PretrainedBackbone] = (),
    cost: CostModel | None = None,
) -> Outcome:
    """The operator's loop, one trial at a time: decide, start or promote, record.
    `catalog`: the verified catalogued backbones the search may fine-tune."""
    spec = TrainingJobSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"train": "file:///digits/train.json"},
            "budget": {"gpuHours": repr(budget / 3600)},
            "output": "file:///models/",
        }
    )
    limit = spec.budget.limit_gpu_seconds
    books = Books(limit, slots, folder, seed)
    planner = AutoMLPlanner(cost=cost or CPU_SLOT_SECONDS)
    entries = {e.name: e for e in catalog}
    summary = DatasetSummary.of(data.facts)
    trials: list[TrialStatus] = []
    for _ in range(200):
        view = PlannerView(
            spec,
            summary,
            [t.model_copy(deep=True) for t in trials],
            totals(limit, [r for t in trials for r in t.attempts]),
            "resnet50",
            seed,
            tuple(catalog),
        )
        decision = planner.decide(view)
        apply_decision(trials, decision)
        for trial in trials:  # the operator learns it from the trainer's result
            trial.primary_metric = METRIC
        queued = [t for t in trials if t.state == TrialState.QUEUED]
        if not queued:
            break
        for trial in queued:
            allowance = trial.allowance_gpu_seconds - trial.charged_gpu_seconds
            record, _ = books.run(
                data,
                trial.name,
                trial.model,
                dict(trial.hyperparameters),
                allowance,
                len(trial.attempts) + 1,
                entries.get(trial.backbone or ""),
            )
            trial.attempts.append(record)
            trial.charged_gpu_seconds = round(sum(r.charged_gpu_seconds for r in trial.attempts), 3)
            # A failed promotion keeps the trial's earlier result, as the operator does.
            trial.metrics = dict(record.metrics) or trial.metrics
            trial.state = TrialState.SUCCEEDED if trial.metrics else TrialState.FAILED
    scored = [t for t in trials if METRIC in t.metrics]
    if not scored:
        return Outcome(limit=limit, charged=books.charged, runs=books.runs, note="no result")
    best = max(scored, key=lambda t: t.metrics[METRIC])
    rungs = sum(1 for r in best.attempts if r.billing == Billing.CHARGED)
    recipe = best.hyperparameters.get("recipe", "train")
    note = f"{best.model} ({recipe}) after {rungs} rung(s); {len(trials)} trials; {decision.done}"
    note += f"; {books.crashes} crashed" if books.crashes else ""
    return Outcome(
        best.metrics[METRIC],
        0.0,
        books.charged,
        limit,
        books.runs,
        str(folder / best.name),
        note,
        [_describe(t) for t in trials],
    )


def _describe(trial: TrialStatus) -> str:
    hp = trial.hyperparameters
    knobs = " ".join(
        f"{k}={hp[k]}"
        for k in ("recipe", "input_size", "batch_size", "lr", "backbone_lr_scale", "epochs")
        if k in hp
    )
    value = trial.metrics.get(METRIC)
    score = f"{value:.3f}" if value is not None else "-"
    return f"{trial.name} {trial.model} {knobs}: val {score}, {trial.charged_gpu_seconds:.0f} s"
