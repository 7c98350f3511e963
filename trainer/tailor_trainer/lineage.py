"""Whose a checkpoint is: the job (its UID), the trial, and the attempts that wrote it.

Every checkpoint records its lineage. An attempt continues implicitly (from `last.pt`
under its output) only a checkpoint of its own job and trial; any other is never
restored, nor overwritten: the attempt ends with a ConfigError naming it. A `resume` URI
in the config is a deliberate choice, restored whoever wrote it; the lineage starts
again from there.
"""

import logging
from dataclasses import dataclass
from typing import Any

from tailor_contract import TrialConfig
from tailor_trainer.ownership import OutputTaken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lineage:
    job_uid: str
    trial: str
    attempts: tuple[int, ...]

    @classmethod
    def first(cls, config: TrialConfig) -> "Lineage":
        return cls(config.job_uid, config.trial, (config.attempt,))

    @classmethod
    def of(cls, state: dict[str, Any]) -> "Lineage | None":
        """The checkpoint's lineage; None for one written before lineages were recorded."""
        recorded = state.get("lineage")
        if not isinstance(recorded, dict):
            return None
        try:
            return cls(
                str(recorded["job_uid"]),
                str(recorded["trial"]),
                tuple(int(a) for a in recorded["attempts"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def state(self) -> dict[str, Any]:
        return {"job_uid": self.job_uid, "trial": self.trial, "attempts": list(self.attempts)}

    def owned_by(self, config: TrialConfig) -> bool:
        return (self.job_uid, self.trial) == (config.job_uid, config.trial)

    def continued_by(self, config: TrialConfig) -> "Lineage":
        """The lineage the attempt's own checkpoints record: this one and the attempt,
        if it is the same trial's; else the attempt alone (an explicit `resume`)."""
        if not self.owned_by(config):
            return Lineage.first(config)
        if self.attempts and self.attempts[-1] == config.attempt:
            return self
        return Lineage(self.job_uid, self.trial, (*self.attempts, config.attempt))

    def describe(self) -> str:
        attempts = ", ".join(map(str, self.attempts)) or "none"
        return f"job uid {self.job_uid}, trial {self.trial}, attempts {attempts}"


def check_own(state: dict[str, Any], config: TrialConfig, uri: str) -> Lineage:
    """The lineage of a checkpoint found under the attempt's output, if it is the
    attempt's own trial's; OutputTaken (never loaded) for any other."""
    lineage = Lineage.of(state)
    if lineage is None:
        whose = "with no job identity (written by an older Tailor, or not by Tailor)"
    elif not lineage.owned_by(config):
        whose = f"of {lineage.describe()}"
    else:
        if any(attempt > config.attempt for attempt in lineage.attempts):
            log.warning(
                "checkpoint %s was written by a later attempt (%s) than this one (%d)",
                uri,
                lineage.describe(),
                config.attempt,
            )
        return lineage
    raise OutputTaken(
        f"the checkpoint {uri} under this trial's output is {whose}, not of this job "
        f"(uid {config.job_uid}) and trial {config.trial}: it is neither resumed nor "
        f"overwritten; choose another spec.output, or delete the objects under "
        f"{config.job_output or config.output} to reuse it"
    )
