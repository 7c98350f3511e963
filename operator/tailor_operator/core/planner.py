"""Which trials to run: an interface, and the simple planner.

The plan asks a planner what to do next and stays in charge of everything else
(budgets, pods, retries). The AutoML search (core/search/) implements the same
interface; SimplePlanner runs given trials as they are.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tailor_contract import PretrainedBackbone
from tailor_operator.core.spec import Scalar, TrainingJobSpec
from tailor_operator.core.status import (
    BudgetStatus,
    DatasetSummary,
    StopReason,
    TrialState,
    TrialStatus,
)

TRIAL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
RESERVED_TRIAL_NAMES = frozenset({"validate"})


@dataclass(frozen=True)
class TrialProposal:
    name: str
    model: str
    gpus: int
    allowance_gpu_seconds: float
    pretrained: str | None = None
    hyperparameters: Mapping[str, Scalar] = field(default_factory=dict)
    backbone: str | None = None  # the catalog entry fine-tuned (its weights, digest checked)
    chosen_by: Literal["search", "user"] = "search"  # "user": listed in spec.search.trials


@dataclass(frozen=True)
class Promotion:
    """Continue a succeeded trial: one more attempt, resuming from its checkpoint, until
    the trial's charges reach the new cumulative allowance."""

    name: str
    allowance_gpu_seconds: float  # cumulative over the trial's attempts
    hyperparameters: Mapping[str, Scalar] = field(default_factory=dict)  # replaces the trial's


@dataclass(frozen=True)
class PlannerView:
    """What a planner may base its decision on; it changes nothing itself."""

    spec: TrainingJobSpec
    dataset: DatasetSummary | None
    trials: Sequence[TrialStatus]
    budget: BudgetStatus
    default_model: str
    seed: int = 0  # stable per job: a planner's random choices derive from it
    # The catalogued backbones validation read and verified for this job's task.
    catalog: Sequence[PretrainedBackbone] = ()


@dataclass(frozen=True)
class PlannerDecision:
    new_trials: Sequence[TrialProposal] = ()
    promotions: Sequence[Promotion] = ()
    # Running trials to stop now; they are charged for what they ran.
    stop_trials: Sequence[str] = ()
    # Set once no trial will ever be proposed or promoted again (after this decision).
    done: StopReason | None = None


class TrialPlanner(Protocol):
    def first_model(
        self,
        spec: TrainingJobSpec,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> str:
        """The model validation sizes its feasibility estimate with."""
        ...

    def minimum_gpu_seconds(
        self,
        spec: TrainingJobSpec,
        dataset: DatasetSummary,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> float | None:
        """The budget below which this planner cannot run a useful search; None: no floor."""
        ...

    def decide(self, view: PlannerView) -> PlannerDecision: ...


class InvalidProposal(ValueError):
    """A planner proposed something the operator cannot run (a bug in the planner)."""


def check_proposals(
    proposals: Sequence[TrialProposal], existing: Sequence[TrialStatus], max_gpus: int
) -> None:
    seen = {t.name for t in existing} | RESERVED_TRIAL_NAMES
    for proposal in proposals:
        if not TRIAL_NAME.match(proposal.name) or proposal.name in seen:
            raise InvalidProposal(
                f"trial name {proposal.name!r} must be new, 1-20 characters of [a-z0-9-]"
            )
        seen.add(proposal.name)
        if not 1 <= proposal.gpus <= max_gpus:
            raise InvalidProposal(
                f"trial {proposal.name}: gpus={proposal.gpus} outside 1..{max_gpus}"
            )
        if proposal.allowance_gpu_seconds <= 0:
            raise InvalidProposal(f"trial {proposal.name}: allowance must be positive")


def check_promotions(promotions: Sequence[Promotion], existing: Sequence[TrialStatus]) -> None:
    trials = {t.name: t for t in existing}
    seen: set[str] = set()
    for promotion in promotions:
        trial = trials.get(promotion.name)
        if trial is None or trial.state != TrialState.SUCCEEDED or promotion.name in seen:
            raise InvalidProposal(
                f"promotion of {promotion.name!r}: only a succeeded trial, once per decision"
            )
        seen.add(promotion.name)
        if promotion.allowance_gpu_seconds <= trial.charged_gpu_seconds:
            raise InvalidProposal(
                f"promotion of {promotion.name}: allowance {promotion.allowance_gpu_seconds} "
                f"is not above what it was charged ({trial.charged_gpu_seconds})"
            )


def _floor(value: float) -> float:
    return math.floor(value * 1000) / 1000


class SimplePlanner:
    """The trials given in spec.search.trials, else one per spec.search.models, else one
    default trial; the budget shared equally among them, all proposed at once."""

    def _candidates(self, spec: TrainingJobSpec, default_model: str) -> list[TrialProposal]:
        gpus = spec.resources.max_gpus_per_trial
        if spec.search.trials:
            return [
                TrialProposal(
                    name=f"t{index}",
                    model=trial.model,
                    gpus=trial.gpus or gpus,
                    allowance_gpu_seconds=0.0,
                    pretrained=trial.pretrained,
                    hyperparameters=dict(trial.hyperparameters),
                    chosen_by="user",
                )
                for index, trial in enumerate(spec.search.trials)
            ]
        models = spec.search.models or [default_model]
        return [
            TrialProposal(name=f"t{index}", model=model, gpus=gpus, allowance_gpu_seconds=0.0)
            for index, model in enumerate(models)
        ]

    def first_model(
        self,
        spec: TrainingJobSpec,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> str:
        return self._candidates(spec, default_model)[0].model

    def minimum_gpu_seconds(
        self,
        spec: TrainingJobSpec,
        dataset: DatasetSummary,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> float | None:
        return None  # the trials are given: validation's own estimate is the only check

    def decide(self, view: PlannerView) -> PlannerDecision:
        if view.trials:
            return PlannerDecision(done=StopReason.CONVERGED)
        candidates = self._candidates(view.spec, view.default_model)
        share = _floor(view.budget.limit_gpu_seconds / len(candidates))
        proposals = [
            TrialProposal(
                name=c.name,
                model=c.model,
                gpus=c.gpus,
                allowance_gpu_seconds=share,
                pretrained=c.pretrained,
                hyperparameters=c.hyperparameters,
                chosen_by=c.chosen_by,
            )
            for c in candidates
        ]
        return PlannerDecision(new_trials=proposals, done=StopReason.CONVERGED)
