"""Predicted calibrated GPU-seconds of an attempt, corrected by what attempts reported.

The prior is tailor_contract.cost (the trainer's validation uses the same). Each
finished attempt that reported its epochs is one observation of
    seconds = a * fixed(gpus) + k[model] * epochs * epoch(model, side, gpus)
fitted by least squares in relative error with a ridge toward the prior (a = k = 1),
so one odd attempt moves it little and a backbone never seen borrows the others'
correction.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tailor_contract import DatasetFacts
from tailor_contract.backbones import Task
from tailor_contract.cost import REFERENCE, Backbone, CostModel, epoch_gpu_seconds, find_backbone
from tailor_operator.core.status import Billing, TrialStatus

# The prior's weight, against observations weighing about 1 each where they inform
# a factor well (a long run for k, a short one for a).
PRIOR_WEIGHT = 0.02
# Plan epochs to fill this share of an allowance: a cost underestimated by up to this
# much still lets the learning-rate schedule finish before the allowance stops it.
SAFETY = 0.85


@dataclass(frozen=True)
class Observation:
    model: str
    side: int
    gpus: int
    epochs: float
    gpu_seconds: float


def observations(trials: Iterable[TrialStatus]) -> list[Observation]:
    """Charged attempts that reported how many epochs their GPU-seconds bought: the
    epochs they reached less where the attempt before them left the checkpoint
    (skipped when that attempt did not say)."""
    found = []
    for trial in trials:
        if trial.hyperparameters.get("recipe") == "linear_probe":
            continue  # its "epoch" is a forward pass, not a training epoch
        side = trial.hyperparameters.get("input_size", 224)
        before: float | None = 0.0
        for record in trial.attempts:
            if not record.final:
                continue
            reached = record.epochs
            if (
                before is not None
                and reached is not None
                and reached > before
                and record.billing == Billing.CHARGED
                and record.gpu_seconds > 0
                and record.gpus > 0
            ):
                found.append(
                    Observation(
                        trial.model,
                        int(side) if isinstance(side, int | float) else 224,
                        record.gpus,
                        reached - before,
                        record.gpu_seconds,
                    )
                )
            before = reached
    return found


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems here are tiny)."""
    n = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[col][col]:
                ratio = rows[r][col] / rows[col][col]
                rows[r] = [a - ratio * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] if rows[i][i] else 1.0 for i in range(n)]


class CostEstimator:
    def __init__(
        self,
        facts: DatasetFacts,
        cost: CostModel = REFERENCE,
        seen: Sequence[Observation] = (),
        backbones: Mapping[str, Backbone] | None = None,
        task: Task = "classification",
    ) -> None:
        self.facts = facts
        self.cost = cost
        self.task = task
        # Backbones the ladder does not price (catalogued ones), by timm name.
        self.backbones = dict(backbones or {})
        self.overhead = 1.0  # a: multiplies the fixed seconds
        self.global_factor = 1.0  # k for backbones without observations
        self.factors: dict[str, float] = {}
        if seen:
            self._fit(seen)

    def _prior_epoch(self, model: str, side: int, gpus: int) -> float:
        backbone = self.backbones.get(model) or find_backbone(model, self.task)
        return epoch_gpu_seconds(self.facts, backbone, side, gpus, self.cost, self.task)

    def _fit(self, seen: Sequence[Observation]) -> None:
        """Least squares in relative error, ridge toward the prior: unknowns are the
        overhead factor a and one k per observed backbone."""
        models = sorted({o.model for o in seen})
        size = 1 + len(models)
        normal = [[PRIOR_WEIGHT if i == j else 0.0 for j in range(size)] for i in range(size)]
        target = [PRIOR_WEIGHT] * size  # the prior: every factor 1
        for o in seen:
            row = [0.0] * size
            row[0] = o.gpus * self.cost.fixed_seconds / o.gpu_seconds
            row[1 + models.index(o.model)] = (
                o.epochs * self._prior_epoch(o.model, o.side, o.gpus) / o.gpu_seconds
            )
            for i in range(size):
                target[i] += row[i]
                for j in range(size):
                    normal[i][j] += row[i] * row[j]
        solution = [max(0.05, x) for x in _solve(normal, target)]
        self.overhead = solution[0]
        self.factors = dict(zip(models, solution[1:], strict=True))
        logs = [math.log(k) for k in self.factors.values()]
        # A backbone never seen: the others' correction, shrunk toward the prior.
        self.global_factor = math.exp(sum(logs) / (len(logs) + PRIOR_WEIGHT))

    def factor(self, model: str) -> float:
        return self.factors.get(model, self.global_factor)

    def fixed_seconds(self, gpus: int) -> float:
        return self.overhead * gpus * self.cost.fixed_seconds

    def epoch_seconds(self, model: str, side: int, gpus: int) -> float:
        return self.factor(model) * self._prior_epoch(model, side, gpus)

    def attempt_seconds(self, model: str, side: int, gpus: int, epochs: float) -> float:
        return self.fixed_seconds(gpus) + epochs * self.epoch_seconds(model, side, gpus)

    def allowance_for(self, model: str, side: int, gpus: int, epochs: float) -> float:
        """The allowance for which epochs_for plans `epochs` (its inverse)."""
        return self.attempt_seconds(model, side, gpus, epochs) / SAFETY

    def epochs_for(self, model: str, side: int, gpus: int, allowance: float) -> float:
        """Epochs one attempt can train within `allowance`, with a safety margin."""
        spare = allowance * SAFETY - self.fixed_seconds(gpus)
        return max(0.0, spare / self.epoch_seconds(model, side, gpus))
