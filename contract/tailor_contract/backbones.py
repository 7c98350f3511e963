"""A catalogued pretrained backbone, as both sides see it.

Platform teams keep the catalog as cluster-scoped `Backbone` objects (crds/); the
operator reads them, the search fine-tunes them, and a trial's config carries the one
entry it uses, so the trainer loads exactly the weights the catalog names (digest
checked) with the input size and normalisation they were pretrained with.
"""

from collections.abc import Mapping
from typing import Any, Literal

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


# -- The cluster-scoped Backbone object (crds/tailor.dev_backbones.yaml) ----------------

GROUP = "tailor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Backbone"
PLURAL = "backbones"

# PretrainedBackbone field -> the Backbone object's spec field (camelCase, as the CRD).
SPEC_FIELDS: dict[str, str] = {
    "architecture": "architecture",
    "weights": "weights",
    "digest": "digest",
    "pretrained_on": "pretrainedOn",
    "license": "license",
    "input_size": "inputSize",
    "mean": "mean",
    "std": "std",
    "interpolation": "interpolation",
    "gmacs": "gmacs",
    "parameters_millions": "parametersMillions",
    "tasks": "tasks",
}


def to_object(entry: PretrainedBackbone, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Backbone object (apiVersion, kind, metadata.name, spec) of a catalog entry:
    JSON-ready, what `kubectl apply` or a server-side apply sends. No status."""
    values = entry.model_dump(mode="json")
    metadata: dict[str, Any] = {"name": entry.name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {camel: values[field] for field, camel in SPEC_FIELDS.items()},
    }


def from_object(obj: Mapping[str, Any]) -> PretrainedBackbone:
    """The catalog entry of a Backbone object as the API server returns it (a dict).

    Spec fields this contract does not know (a newer CRD) are ignored; a missing
    required field or an invalid value raises pydantic's ValidationError."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    values: dict[str, Any] = {"name": metadata.get("name")}
    for field, camel in SPEC_FIELDS.items():
        if camel in spec and spec[camel] is not None:
            value = spec[camel]
            values[field] = tuple(value) if isinstance(value, list) else value
    return PretrainedBackbone.model_validate(values)
