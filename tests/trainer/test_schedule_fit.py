"""The schedule fitted to the allowance: when it is decided, and what it decides."""

import pytest

from tailor_trainer.optim import Schedule, warmup_cosine
from tailor_trainer.schedule_fit import ScheduleFit


def _fit(total: int = 200, per_epoch: int = 5, eval_every: int = 5, allowance: float = 1e6):
    return ScheduleFit(0, total, per_epoch, eval_every, allowance_seconds=allowance)


def test_the_pace_is_measured_after_the_warm_up_steps_and_over_the_window():
    fit = _fit()
    assert (fit.warm_up_steps, fit.window) == (4, 10)  # 2% and 5% of 200 steps
    assert not fit.ready(3, 3.0)
    assert not fit.ready(4, 4.0)  # the measurement starts here
    assert fit.since is not None
    assert fit.since.step == 4
    assert not fit.ready(13, 13.0)
    assert fit.ready(14, 14.0)


def test_a_resumed_attempt_measures_its_own_pace_from_where_it_resumed():
    fit = ScheduleFit(100, 200, 5, 5, allowance_seconds=1e6)
    assert not fit.ready(100, 0.0)
    assert not fit.ready(104, 4.0)
    assert fit.since is not None
    assert fit.since.step == 104


def test_a_plan_far_longer_than_its_allowance_decides_after_a_twentieth_of_it():
    fit = _fit(total=60_000, per_epoch=6, eval_every=6, allowance=100.0)
    assert fit.window == 3_000
    fit.ready(6, 0.0)
    assert not fit.ready(11, 4.0)  # 5 seconds are a twentieth of 100
    assert not fit.ready(11, 5.0)  # and the window holds an evaluation: 6 steps
    assert fit.ready(12, 5.0)


def test_the_schedule_ends_where_the_allowance_does():
    fit = _fit()
    fit.ready(4, 10.0)
    assert fit.ready(14, 30.0)  # two seconds a step
    # 100 seconds left after the last duties, 95 of them planned: 47 more steps.
    assert fit.decide(14, 30.0, seconds_left=100.0) == 14 + 47
    assert fit.decided
    assert not fit.ready(20, 40.0)  # once


def test_a_plan_that_fits_keeps_its_length():
    fit = _fit()
    fit.ready(4, 10.0)
    assert fit.decide(14, 30.0, seconds_left=1_000.0) == 200


def test_no_time_left_still_takes_one_more_step():
    fit = _fit()
    fit.ready(4, 10.0)
    assert fit.decide(14, 30.0, seconds_left=-5.0) == 15


def test_a_shortened_schedule_warms_up_and_decays_over_its_new_length():
    schedule = Schedule(total=200, warmup_fraction=0.3, floor=0.01)
    assert schedule(100) == pytest.approx(warmup_cosine(100, 200, 60, 0.01))
    schedule.shorten(100)
    assert schedule(30) == pytest.approx(warmup_cosine(30, 100, 30, 0.01))
    assert schedule(100) == pytest.approx(0.01)  # at its floor where it now ends
    with pytest.raises(ValueError, match="cannot end at step 150"):
        schedule.shorten(150)
