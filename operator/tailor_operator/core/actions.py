"""Actions a plan asks for besides creating objects."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DeletePod:
    name: str
    reason: str
