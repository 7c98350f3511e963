"""A catalogued pretrained backbone, as both sides see it.

Platform teams keep the catalog as cluster-scoped `Backbone` objects (crds/); the
operator reads them, the search fine-tunes them, and a trial's config carries the one
entry it uses, so the trainer loads exactly the weights the catalog names (digest
checked) with the input size and normalisation they were pretrained with.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["classification", "multilabel", "detection"]
CLASSIFICATION_TASKS: tuple[Task, ...] = ("classification", "multilabel")


class PretrainedBackbone(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the Backbone object's name, e.g. efficientnet-lite0-imagenet")
    architecture: str = Field(description="timm model name the weights load into strictly")
    weights: str = Field(description="s3:// (read with the job's credentials) or https:// URI")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="of the weights file")
    pretrained_on: str = Field(default="", description="e.g. ImageNet-1k")
    license: str = Field(default="", description="SPDX identifier of the weights' licence")
    input_size: int = Field(default=224, ge=16, description="square side it was trained at")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    gmacs: float = Field(gt=0, description="forward GMACs per image at input_size")
    parameters_millions: float = Field(default=0.0, ge=0)
    tasks: tuple[Task, ...] = CLASSIFICATION_TASKS

    def gmacs_at(self, side: int) -> float:
        """Forward GMACs per image at another square side (convolutions scale by area)."""
        return self.gmacs * (side / self.input_size) ** 2

    def serves(self, task: str) -> bool:
        return task in self.tasks
