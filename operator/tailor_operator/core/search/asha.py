"""Where each trial stands in the search, read back from the status alone (the planner
keeps no memory between reconciliations), and which trials go on (ASHA).

A trial's k-th charged attempt ends its rung k: waived attempts are retries of the
same rung, never results, so a retried attempt cannot count twice.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from tailor_contract.metrics import TIEBREAK, Selection
from tailor_operator.core.ledger import DID_THE_WORK as SCORED
from tailor_operator.core.search.rungs import Ladder
from tailor_operator.core.status import Billing, TrialState, TrialStatus

ACTIVE = frozenset({TrialState.QUEUED, TrialState.RUNNING, TrialState.RETRYING})


@dataclass(frozen=True)
class RungResult:
    trial: str
    index: int
    rung: int
    value: float | None  # the primary metric; None: diverged, cancelled or unscored
    finished: datetime | None
    gain: float | None  # score over the same trial's previous rung (+ is better)
    loss: float | None = None  # its log loss: breaks ties of the metric (TIEBREAK)

    def scores(self, metric: str) -> dict[str, float]:
        """What Selection ranks it by: the metric, and the log loss for close calls."""
        found = {metric: self.value or 0.0}
        return found | ({TIEBREAK: self.loss} if self.loss is not None else {})


@dataclass(frozen=True)
class Standing:
    trial: TrialStatus
    index: int
    results: tuple[RungResult, ...]

    @property
    def active(self) -> bool:
        return self.trial.state in ACTIVE

    @property
    def rungs_done(self) -> int:
        return len(self.results)

    @property
    def last_value(self) -> float | None:
        return self.results[-1].value if self.results else None

    @property
    def promotable(self) -> bool:
        """Ended its last rung well and waits for a decision (a trial whose promotion
        the infrastructure kept failing ended with its earlier result: not again)."""
        last = self.trial.attempts[-1] if self.trial.attempts else None
        return (
            self.trial.state == TrialState.SUCCEEDED
            and self.last_value is not None
            and last is not None
            and last.billing == Billing.CHARGED
        )


def trial_index(name: str) -> int:
    digits = name[1:] if name.startswith("t") else ""
    return int(digits) if digits.isdigit() else 10**6


def standing(trial: TrialStatus, metric: str | None, sign: float) -> Standing:
    results: list[RungResult] = []
    index = trial_index(trial.name)
    for record in trial.attempts:
        if not record.final or record.billing != Billing.CHARGED:
            continue
        value = record.metrics.get(metric) if metric and record.outcome in SCORED else None
        previous = results[-1].value if results else None
        gain = None if value is None or previous is None else sign * (value - previous)
        loss = record.metrics.get(TIEBREAK) if value is not None else None
        results.append(
            RungResult(trial.name, index, len(results), value, record.finished_at, gain, loss)
        )
    return Standing(trial, index, tuple(results))


def history(standings: Sequence[Standing]) -> list[RungResult]:
    """Every scored rung result, in the order they arrived."""
    scored = [r for s in standings for r in s.results if r.value is not None]
    return sorted(scored, key=lambda r: (r.finished is None, r.finished or 0, r.index, r.rung))


def promotable(
    standings: Sequence[Standing],
    ladder: Ladder,
    selection: Selection,
    capped: Callable[[Standing], bool],
) -> Iterator[tuple[Standing, int]]:
    """(trial, next rung) for each trial in the top 1/ETA of its rung not yet promoted,
    higher rungs first: a promotion brings a result sooner than a new trial does."""
    for rung in range(ladder.top - 1, -1, -1):
        reached = [s for s in standings if s.rungs_done > rung]
        quota = ladder.promotions_at(len(reached))
        scored = sorted(
            (s for s in reached if s.results[rung].value is not None), key=lambda s: s.index
        )
        order = selection.order([s.results[rung].scores(selection.metric) for s in scored])
        ranked = [scored[i] for i in order]
        for candidate in ranked[:quota]:
            if candidate.rungs_done == rung + 1 and candidate.promotable and not capped(candidate):
                yield candidate, rung + 1


def best(standings: Sequence[Standing], selection: Selection) -> Standing | None:
    """The trial whose model would be exported now (its latest result is the best)."""
    finished = sorted((s for s in standings if s.promotable), key=lambda s: s.index)
    if not finished:
        return None
    return finished[selection.best([s.results[-1].scores(selection.metric) for s in finished])]
