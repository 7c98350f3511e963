"""When more search will not help: a perfect score on enough images, or a plateau of the
best metric."""

from collections.abc import Sequence

from tailor_operator.core.search.asha import RungResult

# Improvements smaller than this (metrics in [0, 1]) are noise, not progress.
MIN_DELTA = 0.002
PERFECT_TOLERANCE = 1e-9
# No errors on n images only bounds the error rate below about 3/n (95 % confidence, the
# rule of three): 20 of 20 still allows 15 %. From 60 images a perfect score says the
# model errs less than 1 time in 20, evidence enough to stop the search; on fewer it
# searches on (tied results then go to the lower log-loss) until a plateau or the budget.
PERFECT_EVIDENCE_IMAGES = 60


def is_perfect(value: float, sign: float) -> bool:
    """1.0 for a metric to maximise (accuracy, AP, F1), 0.0 for one to minimise (ECE)."""
    return value >= 1.0 - PERFECT_TOLERANCE if sign > 0 else value <= PERFECT_TOLERANCE


def converged(value: float, sign: float, evaluation_images: int) -> bool:
    """A perfect score on an evaluation split large enough to mean it."""
    return is_perfect(value, sign) and evaluation_images >= PERFECT_EVIDENCE_IMAGES


def plateaued(
    results: Sequence[RungResult],
    sign: float,
    patience: int,
    min_delta: float = MIN_DELTA,
    promoting: bool = True,
) -> bool:
    """The best metric has not moved by min_delta over the last `patience` results, and
    no trial that was given more budget among them gained min_delta from it.

    When the search promotes, only once some trial was promoted: before that, nothing
    says whether more budget helps."""
    if patience < 1 or (promoting and not any(r.rung >= 1 for r in results)):
        return False
    best: float | None = None
    last_improvement = -1
    for position, result in enumerate(results):
        score = sign * (result.value or 0.0)
        if best is None or score >= best + min_delta:
            best, last_improvement = score, position
        elif score > best:
            best = score  # a small step up: the bar rises, the clock does not reset
    stale = results[last_improvement + 1 :]
    if len(stale) < patience:
        return False
    return all(r.gain is None or r.gain < min_delta for r in stale if r.rung >= 1)
