"""The attempt's GPU-second allowance: what it has used, and when it must stop.

Calibrated GPU-seconds = wall seconds x GPUs x calibration factor, counted from the
process start (the operator charges from container start). A CPU-only attempt counts
as one slot, so the same arithmetic bounds it.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Allowance:
    gpu_seconds: float
    gpus: int
    factor: float
    started: float
    clock: Callable[[], float] = time.monotonic

    @property
    def rate(self) -> float:
        """Calibrated GPU-seconds per wall second."""
        return max(1, self.gpus) * self.factor

    def wall_seconds(self) -> float:
        return max(0.0, self.clock() - self.started)

    def used(self) -> float:
        return self.wall_seconds() * self.rate

    def wall_left(self) -> float:
        return max(0.0, self.gpu_seconds - self.used()) / self.rate


def export_estimate(weight_bytes: int) -> float:
    """Wall seconds of an export not yet measured (trace, ONNX and safetensors files,
    uploads): ten seconds plus one per 10 MB of weights. A flat minute would leave a
    short attempt (a search's first rung on a slow slot) no time to train at all."""
    return 10.0 + weight_bytes / 10e6


@dataclass
class Reserve:
    """Wall seconds the attempt must keep for its last duties: the step under way, a
    checkpoint, the final evaluation and the export. Each starts as an estimate and
    becomes a measurement once the duty has been done."""

    checkpoint_bytes: int  # weights and optimizer state, what a checkpoint writes
    eval_images: int
    batch: int
    export: float = 0.0
    margin: float = 2.0
    step: float = 0.0
    measured: dict[str, float] = field(default_factory=dict)

    def observe(self, duty: str, seconds: float) -> None:
        if duty == "step":
            # A slow step (the first, a compile, a cache miss) must not set the pace for good.
            self.step = seconds if self.step == 0.0 else 0.9 * self.step + 0.1 * seconds
            return
        # Keep the worst seen: the next checkpoint to a busy store can be slower.
        self.measured[duty] = max(seconds, self.measured.get(duty, 0.0))

    @property
    def checkpoint(self) -> float:
        # Unmeasured: a slow object store (50 MB/s) plus a second of overhead.
        return self.measured.get("checkpoint", 1.0 + self.checkpoint_bytes / 50e6)

    @property
    def evaluation(self) -> float:
        # Unmeasured: a forward pass costs less than a training step per image.
        per_image = self.step / max(1, self.batch)
        return self.measured.get("evaluation", 1.0 + self.eval_images * per_image)

    def total(self) -> float:
        # An export also writes the evaluation report: one more pass over the
        # evaluation split with the exported weights, and a few seconds of figures.
        report = self.evaluation + 3.0 if self.export else 0.0
        return (
            2 * self.step
            + 1.5 * self.checkpoint
            + 1.2 * self.evaluation
            + self.export
            + report
            + self.margin
        )
