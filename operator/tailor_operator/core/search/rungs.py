"""Successive halving's rungs, in calibrated GPU-seconds, sized from the budget.

Rung k gives a trial a cumulative allowance r0 * ETA**k; at each rung the best 1/ETA of
the trials that reached it continue (ASHA). The top rung is about what a full training
of the default backbone costs (more would buy nothing), the bottom one at least an
attempt's fixed costs twice over. With n0 configurations started, the
promotions ASHA allows cost at most
    n0 * r0 * (1 + K * (ETA - 1) / ETA)        (K promotions)
and n0 and r0 are chosen so that this is at most the budget: the plan never asks for
more than there is.
"""

import math
from dataclasses import dataclass

from tailor_contract.cost import MIN_SEARCH_TRIALS

ETA = 3
MAX_PROMOTIONS = 3
MAX_CONFIGURATIONS = 32
# Rung 0 must be worth its fixed costs: at least this many times an attempt's overhead.
OVERHEAD_SHARE = 2.0


@dataclass(frozen=True)
class Ladder:
    rungs: tuple[float, ...]  # cumulative allowance of each rung, r0 first
    trials: int  # configurations started at rung 0

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def promotions_at(self, results: int) -> int:
        """How many of `results` configurations at a rung may continue (ASHA)."""
        return results // ETA


def per_configuration(promotions: int) -> float:
    """What one rung-0 configuration costs the bracket, in units of r0."""
    return 1 + promotions * (ETA - 1) / ETA


def _floor(value: float) -> float:
    # Rounded down: rounding must never lift the plan above the budget.
    return math.floor(value * 1000) / 1000


def plan_ladder(
    budget: float, useful_trial: float, full_trial: float, overhead: float
) -> Ladder | None:
    """The ladder for a budget, or None when it cannot pay MIN_SEARCH_TRIALS useful
    trials. useful_trial: GPU-seconds of the cheapest useful attempt; full_trial: of a
    full training of the default configuration; overhead: an attempt's fixed costs."""
    if useful_trial <= 0 or budget < MIN_SEARCH_TRIALS * useful_trial:
        return None
    floor = max(useful_trial, OVERHEAD_SHARE * overhead)
    promotions = 0
    while promotions < MAX_PROMOTIONS and floor * ETA ** (promotions + 1) <= full_trial:
        promotions += 1
    # A whole bracket (ETA**K configurations) must fit, else fewer promotions.
    while promotions and floor * ETA**promotions * per_configuration(promotions) > budget:
        promotions -= 1
    unit = per_configuration(promotions)
    if promotions:
        first = max(floor, full_trial / ETA**promotions)
        least = ETA**promotions
    else:
        first = max(floor, min(full_trial, budget / MIN_SEARCH_TRIALS))
        least = MIN_SEARCH_TRIALS
    trials = math.floor(budget / (first * unit) + 1e-9)
    if trials < least or trials > MAX_CONFIGURATIONS:
        # Too few: share the budget among the fewest; too many: give each more.
        trials = min(max(trials, least), MAX_CONFIGURATIONS)
        first = budget / (trials * unit)
    rungs = tuple(_floor(first * ETA**k) for k in range(promotions + 1))
    return Ladder(rungs, trials)
