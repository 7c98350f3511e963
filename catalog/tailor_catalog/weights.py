"""A checkpoint made into catalog weights: keys mapped, loaded strictly into the timm
architecture, measured, and serialised as safetensors bytes with their digest."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import save as save_safetensors

from tailor_catalog.errors import CatalogError
from tailor_catalog.mappings import block_names, key_mapping
from tailor_catalog.measure import gmacs, parameters_millions
from tailor_catalog.sources import StateDict
from tailor_contract import PretrainedBackbone

# Normalisation timm's pretrained_cfg does not know: the layout's own training recipe.
# torchvision evaluated its ImageNet weights after a bilinear resize.
LAYOUT_INTERPOLATION = {"torchvision-mobilenetv2": "bilinear"}


@dataclass(frozen=True)
class Preprocessing:
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str


@dataclass(frozen=True)
class Prepared:
    """Weights ready to write: the bytes, their digest, and what was measured."""

    data: bytes
    digest: str
    tensors: int
    gmacs: float
    parameters_millions: float
    preprocessing: Preprocessing

    def entry(
        self,
        name: str,
        architecture: str,
        weights: str,
        pretrained_on: str = "",
        license: str = "",
        tasks: tuple[str, ...] | None = None,
    ) -> PretrainedBackbone:
        """The catalog entry of these weights, stored at `weights` (pydantic validates)."""
        extra: dict[str, Any] = {"tasks": tasks} if tasks is not None else {}
        return PretrainedBackbone(
            name=name,
            architecture=architecture,
            weights=weights,
            digest=self.digest,
            pretrained_on=pretrained_on,
            license=license,
            input_size=self.preprocessing.input_size,
            mean=self.preprocessing.mean,
            std=self.preprocessing.std,
            interpolation=self.preprocessing.interpolation,
            gmacs=round(self.gmacs, 4),
            parameters_millions=round(self.parameters_millions, 3),
            **extra,
        )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def create(architecture: str) -> torch.nn.Module:
    """The architecture with timm's 1000-class ImageNet head, randomly initialised."""
    import timm

    if not timm.is_model(architecture):
        raise CatalogError(f"timm has no model named {architecture!r}")
    model: torch.nn.Module = timm.create_model(architecture, pretrained=False)
    return model.eval()


def preprocessing_of(
    architecture: str,
    layout: str,
    *,
    input_size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    interpolation: str | None = None,
) -> Preprocessing:
    """Input size and normalisation: what is given, else the layout's recipe, else
    timm's pretrained_cfg for the architecture."""
    import timm

    config: Any = timm.models.get_pretrained_cfg(architecture)
    known: dict[str, Any] = config.to_dict() if config is not None else {}
    side = input_size or int(known.get("input_size", (3, 224, 224))[-1])
    found_mean = mean or tuple(float(v) for v in known.get("mean", (0.485, 0.456, 0.406)))
    found_std = std or tuple(float(v) for v in known.get("std", (0.229, 0.224, 0.225)))
    chosen = interpolation or LAYOUT_INTERPOLATION.get(layout) or known.get("interpolation")
    return Preprocessing(
        side,
        (found_mean[0], found_mean[1], found_mean[2]),
        (found_std[0], found_std[1], found_std[2]),
        str(chosen or "bicubic"),
    )


def blocks_of(model: torch.nn.Module) -> list[str]:
    """timm's names of the model's blocks (blocks.<stage>.<index>), in forward order."""
    stages = getattr(model, "blocks", None)
    if not isinstance(stages, torch.nn.Sequential):
        return []  # not an EfficientNet/MobileNet family model: no blocks to map onto
    return block_names(stages)  # type: ignore[arg-type]  # a Sequential of Sequentials


def mapped_state(model: torch.nn.Module, state: StateDict, layout: str) -> StateDict:
    """The checkpoint under timm's names for this model."""
    names = key_mapping(layout, list(state), blocks_of(model))
    mapped = {names[key]: value for key, value in state.items()}
    # Old checkpoints lack the batch-norm counters (used only when training with
    # momentum=None); the model's zeros are the right value for them.
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in mapped:
            mapped[key] = torch.zeros_like(value)
    return mapped


def load_strictly(model: torch.nn.Module, state: StateDict, architecture: str, layout: str) -> None:
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise CatalogError(
            f"the weights do not fit {architecture} (layout {layout}): "
            f"{len(missing)} keys missing (e.g. {', '.join(missing[:3]) or '-'}), "
            f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3]) or '-'})"
        )
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise CatalogError(
                f"the weights do not fit {architecture} (layout {layout}): {key} is "
                f"{tuple(value.shape)} in the checkpoint, {tuple(own[key].shape)} in the model"
            )
    model.load_state_dict(state, strict=True)


def serialise(model: torch.nn.Module, metadata: dict[str, str]) -> bytes:
    """The model's full state dict as safetensors, deterministically: same weights,
    same bytes, same digest. (safetensors writes metadata keys in hash order, so all
    of it goes under one key, as sorted JSON.)"""
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    return save_safetensors(
        tensors, metadata={"tailor-models": json.dumps(metadata, sort_keys=True)}
    )


def prepare(
    state: StateDict,
    architecture: str,
    layout: str,
    preprocessing: Preprocessing,
    source: str,
) -> Prepared:
    model = create(architecture)
    load_strictly(model, mapped_state(model, state, layout), architecture, layout)
    data = serialise(model, {"architecture": architecture, "layout": layout, "source": source})
    return Prepared(
        data=data,
        digest=sha256_digest(data),
        tensors=len(model.state_dict()),
        gmacs=gmacs(model, preprocessing.input_size),
        parameters_millions=parameters_millions(model),
        preprocessing=preprocessing,
    )
