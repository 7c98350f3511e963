"""One decision of the search: stop, promote, start, or end.

Everything is recomputed from the view (spec, dataset facts, trials, budget, seed), so
a restarted operator decides exactly what the previous one would have. The ladder and
the space depend on priors and the budget only; what attempts reported corrects the
epochs each attempt is given, never the plan itself.
"""

import math
import random

from tailor_contract.cost import (
    MIN_SEARCH_TRIALS,
    CostModel,
    full_epochs,
    min_useful_epochs,
    split_images,
)
from tailor_operator.core.planner import PlannerDecision, PlannerView, Promotion, TrialProposal
from tailor_operator.core.search import asha
from tailor_operator.core.search.cost import CostEstimator, facts_from, observations
from tailor_operator.core.search.rungs import ETA, OVERHEAD_SHARE, plan_ladder
from tailor_operator.core.search.space import EXPLOIT_SHARE, Config, build_space, config_of
from tailor_operator.core.search.stopping import is_perfect, plateaued
from tailor_operator.core.status import StopReason, StopRequest, TrialState

EPSILON = 1e-6
# Rungs and allowances are rounded down to the millisecond; a check of what one buys
# adds it back.
ROUNDING = 1e-3
# The status holds every trial; keep it far from etcd's object size limit.
MAX_TRIALS = 64
# More GPUs per trial only when each still gets this many training images.
IMAGES_PER_GPU = 20_000


def _floor(value: float) -> float:
    return math.floor(value * 1000) / 1000


class SearchRound:
    def __init__(self, view: PlannerView, cost: CostModel, min_delta: float) -> None:
        self.view = view
        self.min_delta = min_delta
        assert view.dataset is not None
        facts = facts_from(view.dataset)
        train, _ = split_images(facts)
        self.train_images = train
        self.min_epochs = min_useful_epochs(train)
        self.max_epochs = full_epochs(train)
        self.fixed = cost.fixed_seconds
        prior = CostEstimator(facts, cost)
        space = build_space(facts, view.spec.search.models)
        side = space.default_side
        limit = view.budget.limit_gpu_seconds
        default = space.default().model
        useful = prior.allowance_for(default, side, 1, self.min_epochs)
        # Rung 0 buys a useful training of the default recipe whenever the budget pays
        # for the smallest search with it; else the search could not even try what it
        # would run without one. Only below that, rung 0 is sized by the cheapest
        # backbone, as validation's minimum is.
        if limit < MIN_SEARCH_TRIALS * useful:
            useful = prior.attempt_seconds(space.models[0].name, side, 1, self.min_epochs)
        full = prior.attempt_seconds(default, side, 1, self.max_epochs)
        self.ladder = plan_ladder(limit, useful, full, cost.fixed_seconds)
        first = self.ladder.rungs[0] if self.ladder else 0.0
        # The rule _new_trial applies: rung 0 must buy a useful training of the backbone
        # (plus what rounding the rungs down took off).
        self.space = space.restrict(
            lambda b: prior.epochs_for(b.name, side, 1, first + ROUNDING) >= self.min_epochs
        )
        self.estimator = CostEstimator(facts, cost, observations(view.trials))
        search = view.spec.search
        self.sign = -1.0 if search.goal == "Minimize" else 1.0
        self.metric = search.primary_metric or next(
            (t.primary_metric for t in view.trials if t.primary_metric), None
        )
        self.standings = [asha.standing(t, self.metric, self.sign) for t in view.trials]
        self.history = asha.history(self.standings)

    # -- what the trials need -------------------------------------------------
    def _gpus(self, model: str, side: int) -> int:
        """Data parallel when the data is large enough to keep every GPU busy and the
        fixed costs, paid on every GPU, stay a small share of rung 0."""
        first = self.ladder.rungs[0] if self.ladder else 0.0
        gpus = 1
        for more in (2, 4, 8):
            if (
                more <= self.view.spec.resources.max_gpus_per_trial
                and self.train_images / more >= IMAGES_PER_GPU
                and more * self.estimator.fixed_seconds(1) * OVERHEAD_SHARE <= first
            ):
                gpus = more
        return gpus

    def _epochs(self, model: str, side: int, gpus: int, allowance: float) -> float:
        return min(self.max_epochs, self.estimator.epochs_for(model, side, gpus, allowance))

    def _useful(self, model: str, side: int, gpus: int, allowance: float) -> bool:
        return self._epochs(model, side, gpus, allowance + ROUNDING) >= self.min_epochs

    def _capped(self, standing: asha.Standing) -> bool:
        return self._trained(standing) >= self.max_epochs - 0.01

    def _trained(self, standing: asha.Standing) -> float:
        """Epochs the trial's checkpoint holds: what attempts reported, else the plan."""
        reported = [r.epochs for r in standing.trial.attempts if r.epochs is not None]
        if reported:
            return max(reported)
        return float(standing.trial.hyperparameters.get("epochs", 0.0))

    # -- decisions ------------------------------------------------------------
    def _config(self, index: int) -> Config:
        rng = random.Random(f"{self.view.seed}:{index}")
        if index == 0:
            return self.space.default()
        leader = asha.best(self.standings, self.sign)
        if leader is not None and rng.random() < EXPLOIT_SHARE:
            return self.space.neighbour(
                config_of(leader.trial.model, dict(leader.trial.hyperparameters)), rng
            )
        return self.space.sample(rng)

    def _new_trial(self, index: int, allowance: float) -> TrialProposal:
        config = self._config(index)
        gpus = self._gpus(config.model, config.input_size)
        epochs = self._epochs(config.model, config.input_size, gpus, allowance)
        if not self._useful(config.model, config.input_size, gpus, allowance):
            # Too dear at this size: the default side, else the cheapest backbone.
            side = self.space.default_side
            model = config.model
            if not self._useful(model, side, gpus, allowance):
                model = self.space.models[0].name
            config = Config(
                model, side, config.batch_size, config.lr, config.weight_decay, config.augmentation
            )
            gpus = self._gpus(model, side)
            epochs = self._epochs(model, side, gpus, allowance)
        return TrialProposal(
            name=f"t{index}",
            model=config.model,
            gpus=gpus,
            allowance_gpu_seconds=_floor(allowance),
            hyperparameters=config.hyperparameters(max(0.01, round(epochs, 2))),
        )

    def _promotion(self, standing: asha.Standing, allowance: float) -> Promotion | None:
        trial = standing.trial
        side = int(trial.hyperparameters.get("input_size", self.space.default_side))
        increment = allowance - trial.charged_gpu_seconds
        trained = self._trained(standing)
        more = self._epochs(trial.model, side, trial.gpus, increment)
        epochs = min(self.max_epochs, trained + more)
        if epochs - trained < 0.5 * self.min_epochs:
            return None  # not worth an attempt's fixed costs
        hyperparameters = dict(trial.hyperparameters) | {"epochs": round(epochs, 2)}
        return Promotion(trial.name, _floor(allowance), hyperparameters)

    def _stop(self) -> StopReason | None:
        perfect = any(is_perfect(r.value or 0.0, self.sign) for r in self.history)
        stopped = any(
            r.stop_requested == StopRequest.EARLY_STOPPED
            for t in self.view.trials
            for r in t.attempts
        )
        if perfect:
            return StopReason.CONVERGED
        ladder = self.ladder
        # Patient enough for the bracket to have explored half its configurations.
        patience = max(ETA + 1, math.ceil(ladder.trials / 2)) if ladder else ETA + 1
        # A trial trained to the full epochs also says what more budget buys.
        capped = any(self._capped(s) for s in self.standings if s.last_value is not None)
        promoting = ladder is not None and ladder.top > 0 and not capped
        if stopped or plateaued(self.history, self.sign, patience, self.min_delta, promoting):
            return StopReason.NO_IMPROVEMENT
        return None

    def decide(self) -> PlannerDecision:
        view = self.view
        active = [s for s in self.standings if s.active]
        reason = self._stop()
        if reason is not None:
            return PlannerDecision(stop_trials=[s.trial.name for s in active], done=reason)
        slots = view.spec.resources.max_parallel_trials - len(active)
        pending = sum(
            max(0.0, s.trial.allowance_gpu_seconds - s.trial.charged_gpu_seconds)
            for s in active
            if s.trial.state != TrialState.RUNNING
        )
        budget = view.budget
        free = (
            budget.limit_gpu_seconds
            - budget.charged_gpu_seconds
            - budget.reserved_gpu_seconds
            - pending
        )
        return self._fill(slots, free, bool(active))

    def _fill(self, slots: int, free: float, busy: bool) -> PlannerDecision:
        ladder = self.ladder
        trials = len(self.view.trials)
        if ladder is None:
            # Below the cheapest useful search (the budget shrank after validation).
            if trials == 0 and free > 0 and slots > 0:
                return PlannerDecision(new_trials=[self._new_trial(0, free)])
            return PlannerDecision(done=None if busy else StopReason.BUDGET_EXHAUSTED)
        promotions: list[Promotion] = []
        proposals: list[TrialProposal] = []
        short = False  # something worth doing that the budget cannot pay for
        for standing, rung in asha.promotable(self.standings, ladder, self.sign, self._capped):
            if slots <= 0:
                break
            allowance = ladder.rungs[rung]
            if allowance - standing.trial.charged_gpu_seconds > free + EPSILON:
                short = True
                if busy:
                    break  # running trials may leave budget over; wait for them
                allowance = standing.trial.charged_gpu_seconds + free
            promotion = self._promotion(standing, allowance)
            if promotion is None:
                continue
            promotions.append(promotion)
            slots -= 1
            free -= promotion.allowance_gpu_seconds - standing.trial.charged_gpu_seconds
        first = ladder.rungs[0]
        waiting = short and busy
        while not waiting and slots > 0 and trials + len(proposals) < ladder.trials:
            if free + EPSILON < first:
                short = True
                break
            proposals.append(self._new_trial(trials + len(proposals), first))
            slots -= 1
            free -= first
        if not (promotions or proposals or busy) and trials >= ladder.trials:
            extra = self._after_bracket(free)
            if isinstance(extra, Promotion):
                promotions.append(extra)
            elif isinstance(extra, TrialProposal):
                proposals.append(extra)
            else:
                short = short or extra
        done = None
        if not (promotions or proposals or busy):
            done = StopReason.BUDGET_EXHAUSTED if short else StopReason.CONVERGED
        return PlannerDecision(new_trials=proposals, promotions=promotions, done=done)

    def _after_bracket(self, free: float) -> Promotion | TrialProposal | bool:
        """With the bracket done and budget left: train the best further while that
        still pays, else try one more configuration. False: nothing worth doing;
        True: something would be, but the budget cannot pay for it."""
        assert self.ladder is not None
        leader = asha.best(self.standings, self.sign)
        if leader is not None and not self._capped(leader):
            gain = leader.results[-1].gain
            if leader.rungs_done == 1 or (gain is not None and gain >= self.min_delta):
                promotion = self._promotion(leader, leader.trial.charged_gpu_seconds + free)
                if promotion is not None:
                    return promotion
        if len(self.view.trials) >= MAX_TRIALS:
            return False
        if free + EPSILON < self.ladder.rungs[0]:
            return True
        return self._new_trial(len(self.view.trials), self.ladder.rungs[0])
