"""The cost model's priors: what a cluster's attempts cost before any has reported.

A document of its own because both the cost arithmetic (cost.py) and the trial config
(documents.py) need it: the operator prices its search with these numbers and hands
them to the validation pod, so that the trainer's budget check uses the same ones.
"""

from pydantic import BaseModel, ConfigDict, Field


class CostModel(BaseModel):
    """Prices on the reference GPU (calibration factor 1.0). The defaults are a data
    centre GPU's; a platform whose attempts start slower or faster (image pulls, storage)
    sets its own (the operator's TAILOR_COST_* settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Training images per second of ResNet-18 at 224 px, bf16, channels-last.
    reference_images_per_second: float = Field(default=2500.0, gt=0)
    reference_gmacs: float = Field(default=1.81, gt=0)
    # The least one image takes whatever the model (decode, augment, the step's fixed
    # costs); half of it grows with the pixel count.
    floor_seconds_per_image: float = Field(default=1 / 8000, ge=0)
    # An evaluation image costs a forward pass only.
    eval_speedup: float = Field(default=3.0, gt=0)
    # Per attempt and per GPU: pod start, imports, data download, checkpoints, export.
    fixed_seconds: float = Field(default=120.0, ge=0)
    # Data-parallel losses: each extra GPU adds this share to an epoch's GPU-seconds.
    multi_gpu_overhead: float = Field(default=0.08, ge=0)
    # Detection: a training image costs this many times a classifier's of the same
    # forward GMACs (target matching, losses, GroupNorm heads, more memory traffic per
    # MAC; measured 0.8-1.0 on a CPU core, a GPU loses more). A prior, corrected from
    # what attempts report.
    detection_overhead: float = Field(default=1.5, gt=0)
    # ... and an evaluation image adds its box decoding, NMS and COCO evaluation, run on
    # the CPU while the charged GPU waits.
    detection_eval_seconds_per_image: float = Field(default=0.004, ge=0)


REFERENCE = CostModel()
