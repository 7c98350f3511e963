"""One decision of the search: stop, promote, start, or end.

Everything is recomputed from the view (spec, dataset facts, trials, budget, seed), so
a restarted operator decides exactly what the previous one would have. The ladder and
the space depend on priors and the budget only; what attempts reported corrects the
epochs each attempt is given, never the plan itself.
"""

import math
import random
from collections.abc import Mapping
from dataclasses import replace

from tailor_contract import PRIMARY_METRIC
from tailor_contract.cost import (
    MIN_SEARCH_TRIALS,
    PROBE_EPOCHS,
    CostModel,
    catalog_backbone,
    epoch_range,
    split_images,
)
from tailor_contract.metrics import Selection, direction
from tailor_operator.core.planner import PlannerDecision, PlannerView, Promotion, TrialProposal
from tailor_operator.core.search import asha
from tailor_operator.core.search.cost import CostEstimator, observations
from tailor_operator.core.search.mirroring import mirroring_hyperparameters
from tailor_operator.core.search.references import pixel_reference, reference_floor
from tailor_operator.core.search.rungs import ETA, OVERHEAD_SHARE, plan_ladder
from tailor_operator.core.search.space import (
    EXPLOIT_SHARE,
    LINEAR_PROBE,
    Config,
    build_space,
    config_of,
)
from tailor_operator.core.search.stopping import converged, plateaued
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


def is_probe(hyperparameters: Mapping[str, object]) -> bool:
    return hyperparameters.get("recipe") == LINEAR_PROBE


class SearchRound:
    def __init__(self, view: PlannerView, cost: CostModel, min_delta: float) -> None:
        self.view = view
        self.min_delta = min_delta
        assert view.dataset is not None
        facts = view.dataset.facts()
        train, _ = split_images(facts)
        self.train_images = train
        self.task = view.spec.task
        # Written into every new trial: no flips where mirroring changes the class.
        self.mirroring = mirroring_hyperparameters(facts)
        self.fixed = cost.fixed_seconds
        space = build_space(facts, view.spec.search.models, view.catalog, self.task)
        known = {e.architecture: catalog_backbone(e, self.task) for e in space.catalog}
        prior = CostEstimator(facts, cost, backbones=known, task=self.task)
        limit = view.budget.limit_gpu_seconds
        default = space.default()
        # With a catalog the probe comes first, outside the bracket: its cost is set
        # aside before the rungs are sized from what remains.
        self.probe_allowance = 0.0
        if space.probing:
            probe = space.probe()
            self.probe_allowance = _floor(
                prior.allowance_for(probe.model, probe.input_size, 1, PROBE_EPOCHS)
            )
        ladder_budget = max(0.0, limit - self.probe_allowance)
        low, high = self._epoch_limits(default)
        useful = prior.allowance_for(default.model, default.input_size, 1, low)
        # Rung 0 buys a useful training of the default recipe whenever the budget pays
        # for the smallest search with it; else the search could not even try what it
        # would run without one. Only below that, rung 0 is sized by the cheapest
        # backbone, as validation's minimum is.
        if ladder_budget < MIN_SEARCH_TRIALS * useful:
            cheapest = space.cheapest().name
            useful = prior.attempt_seconds(cheapest, default.input_size, 1, low)
        full = prior.attempt_seconds(default.model, default.input_size, 1, high)
        self.ladder = plan_ladder(ladder_budget, useful, full, cost.fixed_seconds)
        self.default_rungs = self._default_rungs(default, full)
        first = self.ladder.rungs[0] if self.ladder else 0.0
        # The rule _new_trial applies: rung 0 must buy a useful training of the backbone
        # (plus what rounding the rungs down took off).
        self.space = space.restrict(
            lambda b: prior.epochs_for(b.name, default.input_size, 1, first + ROUNDING) >= low
        )
        self.estimator = CostEstimator(facts, cost, observations(view.trials), known, self.task)
        search = view.spec.search
        self.metric = (
            search.primary_metric
            or next((t.primary_metric for t in view.trials if t.primary_metric), None)
            or PRIMARY_METRIC.get(view.spec.task)
        )
        # The metric's own direction (tailor_contract.metrics), the same the job's
        # result is picked by; the spec checks refused a goal that contradicts it.
        way = direction(view.spec.task, self.metric) if self.metric else None
        self.sign = -1.0 if way == "Minimize" else 1.0
        # Which result is the best: the job's result is picked by the same rule.
        self.selection = Selection(self.metric or "", self.sign, split_images(facts)[1])
        self.floor = reference_floor(facts, view.spec.task, self.metric)
        self.standings = [asha.standing(t, self.metric, self.sign) for t in view.trials]
        # The probe is a reference and a candidate, never a rung of the bracket.
        self.bracket = [s for s in self.standings if not is_probe(s.trial.hyperparameters)]
        self.history = asha.history(self.standings)
        # Catalogued backbones whose fine-tunings all trail the pixel reference do not
        # suit these images (ImageNet features on 8 px scans): training from scratch
        # joins the search, its default recipe first, while they trail it. Not the
        # probe's result: it trailed the reference on 28 px digits too, where
        # fine-tuning then beat it by 13 points.
        pixels = pixel_reference(facts, self.task, self.metric)
        self.scratch_joins = (
            pixels is not None
            and self.space.pretrained
            and not self.space.scratch
            and self._pretrained_trail(pixels)
        )
        if self.scratch_joins:
            self.space = replace(self.space, scratch=True)
        self._scratch_proposed = any(t.backbone is None for t in view.trials)

    def _pretrained_trail(self, reference: float) -> bool:
        """Whether fine-tuned catalogued backbones have results, none of them better
        than `reference` (in the metric's direction)."""
        values = [
            r.value
            for s in self.bracket
            if s.trial.backbone is not None
            for r in s.results
            if r.value is not None
        ]
        return bool(values) and max(self.sign * v for v in values) <= self.sign * reference

    def _default_rungs(self, default: Config, full: float) -> int:
        """How many of the bracket's rung-0 allowances the default configuration gets.

        One, unless the budget is too small for ASHA to promote anything and the default
        is a fine-tuning that one rung cannot train fully: then the bracket is about
        three configurations a rung each, and the default fine-tuning takes all but one
        (one drawn configuration keeps the last). A rung of fine-tuning cannot tell
        knobs apart on a few selection images (the bench's drawn fine-tunings scored
        0.65 to 0.95 on 20), and the default recipe trained twice as long is the better
        model (bench/fewshot.py; docs/automl.md, "Small budgets")."""
        ladder = self.ladder
        if ladder is None or ladder.top > 0 or not default.pretrained:
            return 1
        return 1 if ladder.rungs[0] + ROUNDING >= full else ladder.trials - 1

    def _configurations(self) -> int:
        """Configurations the bracket starts: the ladder's, less the rungs the default
        took."""
        assert self.ladder is not None
        return self.ladder.trials - (self.default_rungs - 1)

    def _epoch_limits(self, config: Config) -> tuple[float, float]:
        """(shortest useful, full) epochs: fine-tuning converges far sooner than
        training from scratch; detection needs more of both."""
        return epoch_range(self.train_images, config.pretrained, self.task)

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

    def _epochs(self, config: Config, gpus: int, allowance: float) -> float:
        _, high = self._epoch_limits(config)
        return min(
            high, self.estimator.epochs_for(config.model, config.input_size, gpus, allowance)
        )

    def _useful(self, config: Config, gpus: int, allowance: float) -> bool:
        low, _ = self._epoch_limits(config)
        return self._epochs(config, gpus, allowance + ROUNDING) >= low

    def _config_of(self, standing: asha.Standing) -> Config:
        trial = standing.trial
        return config_of(trial.model, dict(trial.hyperparameters), trial.backbone)

    def _capped(self, standing: asha.Standing) -> bool:
        config = self._config_of(standing)
        if config.probe:
            return True  # a probe has nothing more to train
        _, high = self._epoch_limits(config)
        return self._trained(standing) >= high - 0.01

    def _trained(self, standing: asha.Standing) -> float:
        """Epochs the trial's checkpoint holds: what attempts reported, else the plan."""
        reported = [r.epochs for r in standing.trial.attempts if r.epochs is not None]
        if reported:
            return max(reported)
        return float(standing.trial.hyperparameters.get("epochs", 0.0))

    # -- decisions ------------------------------------------------------------
    def _config(self, index: int) -> Config:
        rng = random.Random(f"{self.view.seed}:{index}")
        # With a probe: t0 the probe, t1 the default fine-tuning; else t0 the default.
        first = 1 if self.space.probing else 0
        if index == 0 and self.space.probing:
            return self.space.probe()
        if index == first:
            return self.space.default()
        if self.scratch_joins and not self._scratch_proposed:
            self._scratch_proposed = True  # once: later ones are drawn
            return self.space.scratch_default()
        leader = asha.best(self.bracket, self.selection)
        if leader is not None and rng.random() < EXPLOIT_SHARE:
            return self.space.neighbour(self._config_of(leader), rng)
        return self.space.sample(rng)

    def _fallback(self, config: Config, gpus: int, allowance: float) -> Config:
        """A configuration too dear at its size: its knobs at its backbone's default
        side, else on the space's cheapest backbone. Never the probe again, nor the
        default's knobs: with one seed per job either would reproduce a trial already
        run, and charge for it."""
        if config.pretrained:
            entries = list(zip(self.space.catalog, self.space.catalog_sides, strict=True))
            side = next((s for e, s in entries if e.name == config.backbone), entries[0][1])
            sized = replace(config, input_size=side)
            cheapest, cheapest_side = entries[0]
            cheaper = replace(
                sized, model=cheapest.architecture, backbone=cheapest.name, input_size=cheapest_side
            )
        else:
            sized = replace(config, input_size=self.space.default_side)
            cheaper = replace(sized, model=self.space.models[0].name)
        return sized if self._useful(sized, gpus, allowance) else cheaper

    def _new_trial(self, index: int, allowance: float) -> TrialProposal:
        config = self._config(index)
        gpus = self._gpus(config.model, config.input_size)
        if not config.probe and not self._useful(config, gpus, allowance):
            config = self._fallback(config, gpus, allowance)
            gpus = self._gpus(config.model, config.input_size)
        if config.probe:
            gpus, epochs = 1, 1.0
            allowance = min(allowance, self.probe_allowance or allowance)
        else:
            epochs = self._epochs(config, gpus, allowance)
        return TrialProposal(
            name=f"t{index}",
            model=config.model,
            gpus=gpus,
            allowance_gpu_seconds=_floor(allowance),
            backbone=config.backbone,
            hyperparameters=config.hyperparameters(max(0.01, round(epochs, 2))) | self.mirroring,
        )

    def _worth_alone(self, proposal: TrialProposal) -> bool:
        """Whether a fine-tuning given all that is left trains long enough to be worth
        its fixed costs: half the shortest useful fine-tuning, at least one epoch."""
        config = config_of(proposal.model, dict(proposal.hyperparameters), proposal.backbone)
        low, _ = self._epoch_limits(config)
        epochs = float(proposal.hyperparameters.get("epochs", 0.0))
        return epochs >= max(1.0, 0.5 * low)

    def _promotion(self, standing: asha.Standing, allowance: float) -> Promotion | None:
        trial = standing.trial
        config = self._config_of(standing)
        if config.probe:
            return None
        low, high = self._epoch_limits(config)
        increment = allowance - trial.charged_gpu_seconds
        trained = self._trained(standing)
        more = self._epochs(config, trial.gpus, increment)
        epochs = min(high, trained + more)
        if epochs - trained < 0.5 * low:
            return None  # not worth an attempt's fixed costs
        hyperparameters = dict(trial.hyperparameters) | {"epochs": round(epochs, 2)}
        return Promotion(trial.name, _floor(allowance), hyperparameters)

    def _beats_references(self) -> bool:
        """Whether the best result clears what the search can score without learning
        (the majority class): until it does, the search never calls itself done."""
        if self.floor is None:
            return True
        best = max((self.sign * (r.value or 0.0) for r in self.history), default=None)
        return best is not None and best > self.sign * self.floor + self.min_delta

    def _stop(self) -> StopReason | None:
        if not self._beats_references():
            return None
        scored_on = self.selection.evaluated_on or 0
        perfect = any(converged(r.value or 0.0, self.sign, scored_on) for r in self.history)
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
        capped = any(self._capped(s) for s in self.bracket if s.last_value is not None)
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
        proposals: list[TrialProposal] = []
        if self.space.probing and trials == 0 and slots > 0 and free > 0:
            # The probe first: cheap, and the floor every fine-tuning must clear.
            proposals.append(self._new_trial(0, min(free, self.probe_allowance)))
            slots -= 1
            free -= proposals[0].allowance_gpu_seconds
        if ladder is None:
            # Too little for a bracket: the default recipe gets what is left, once (with
            # a catalog, after the probe: fine-tuning it once beats stopping at it).
            index = 1 if self.space.probing else 0
            if trials + len(proposals) == index and free > 0 and slots > 0:
                default = self._new_trial(index, free)
                if index == 0 or self._worth_alone(default):
                    proposals.append(default)
            done = None if busy or proposals else StopReason.BUDGET_EXHAUSTED
            return PlannerDecision(new_trials=proposals, done=done)
        promotions: list[Promotion] = []
        short = False  # something worth doing that the budget cannot pay for
        for standing, rung in asha.promotable(self.bracket, ladder, self.selection, self._capped):
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
        probes = 1 if self.space.probing else 0  # the probe is not in the bracket
        default_index = probes
        configurations = self._configurations() + probes
        while not waiting and slots > 0 and trials + len(proposals) < configurations:
            index = trials + len(proposals)
            allowance = first * self.default_rungs if index == default_index else first
            if free + EPSILON < allowance:
                short = True
                break
            proposals.append(self._new_trial(index, allowance))
            slots -= 1
            free -= allowance
        if not (promotions or proposals or busy) and trials >= configurations:
            extra = self._after_bracket(free)
            if isinstance(extra, Promotion):
                promotions.append(extra)
            elif isinstance(extra, TrialProposal):
                proposals.append(extra)
            else:
                short = short or extra
        done = None
        if not (promotions or proposals or busy):
            # Below the references nothing has converged: the budget ran out first.
            converged = not short and self._beats_references()
            done = StopReason.CONVERGED if converged else StopReason.BUDGET_EXHAUSTED
        return PlannerDecision(new_trials=proposals, promotions=promotions, done=done)

    def _after_bracket(self, free: float) -> Promotion | TrialProposal | bool:
        """With the bracket done and budget left: train the best further while that
        still pays, else try one more configuration. False: nothing worth doing;
        True: something would be, but the budget cannot pay for it."""
        assert self.ladder is not None
        leader = asha.best(self.bracket, self.selection)
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
