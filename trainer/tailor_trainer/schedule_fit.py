"""How many steps the attempt's allowance fits, decided once, early, from its own pace.

The search plans a trial's epochs from a prior of the slot's speed; where the slot is
slower, the allowance stops the trial part way down its cosine, and the weights it
keeps were trained at a high learning rate. So once the pace is known, the schedule is
shortened to end where the allowance does; it is never lengthened (the plan is the
search's). Measured on two few-shot draws (docs/trainer.md, "The schedule fits the
allowance"): held-out accuracy 0.908 -> 0.938 and 0.880 -> 0.932."""

import math
from dataclasses import dataclass

# The pace varies (a busy node, a slower evaluation): the schedule ends a little before
# the allowance would, rather than being cut a few steps short of its end.
MARGIN = 0.95


@dataclass(frozen=True)
class Pace:
    """Where the measurement starts: after the first steps of the attempt (a cold data
    cache, the first batches' allocations), at most one epoch."""

    step: int
    at: float  # monotonic seconds


@dataclass
class ScheduleFit:
    start_step: int  # where this attempt began training (a resumed one: its checkpoint's)
    total: int  # the steps planned
    per_epoch: int
    eval_every: int  # steps between evaluations: the window holds at least one
    allowance_seconds: float  # the attempt's whole allowance, in wall seconds
    since: Pace | None = None
    decided: bool = False

    @property
    def warm_up_steps(self) -> int:
        return min(self.per_epoch, max(3, math.ceil(0.02 * self.total)))

    @property
    def window(self) -> int:
        """Steps measured before deciding: an evaluation's cost and 5% of the plan..."""
        return max(3, self.eval_every, math.ceil(0.05 * self.total))

    def measured_enough(self, steps: int, seconds: float) -> bool:
        """...or, for a plan far longer than its allowance, 5% of the allowance."""
        if steps >= self.window:
            return True
        return steps >= max(3, self.eval_every) and seconds >= 0.05 * self.allowance_seconds

    def ready(self, step: int, now: float) -> bool:
        """At a synchronised step: whether the pace has been measured long enough to
        decide (and nothing was decided yet). The measurement starts at the first call
        past the warm-up steps; evaluations inside it are counted in the pace."""
        if self.decided or step >= self.total:
            return False
        if self.since is None:
            if step >= self.start_step + self.warm_up_steps:
                self.since = Pace(step, now)
            return False
        return self.measured_enough(step - self.since.step, now - self.since.at)

    def decide(self, step: int, now: float, seconds_left: float) -> int:
        """Once: the steps the allowance fits at the measured pace, the planned total
        when it fits them all. `seconds_left`: the wall seconds the allowance leaves
        after the attempt's last duties (evaluation, checkpoint, export)."""
        self.decided = True
        if self.since is None or step <= self.since.step or now <= self.since.at:
            return self.total
        per_step = (now - self.since.at) / (step - self.since.step)
        fits = step + math.floor(MARGIN * max(0.0, seconds_left) / per_step)
        return self.total if fits >= self.total else max(step + 1, fits)
