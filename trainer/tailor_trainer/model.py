"""timm models by name, never from a hub: weights come only from a URI the user gives."""

import logging
from typing import Any

import timm
import torch
from safetensors.torch import load as load_safetensors

from tailor_trainer.data import DataConfig
from tailor_trainer.errors import ConfigError
from tailor_trainer.storage import ObjectNotFound, Storage

log = logging.getLogger(__name__)


def _fixed_input_size(name: str) -> bool:
    config = timm.models.get_pretrained_cfg(name)
    return bool(getattr(config, "fixed_input_size", False))


def create_model(
    name: str,
    num_classes: int,
    *,
    input_size: int | None = None,
    drop_path: float = 0.0,
) -> torch.nn.Module:
    """A randomly initialised timm model with a head of num_classes outputs."""
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model named {name!r}")
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if drop_path:
        kwargs["drop_path_rate"] = drop_path
    # Models with learned position embeddings are built for one input size.
    if input_size is not None and _fixed_input_size(name):
        kwargs["img_size"] = input_size
    model: torch.nn.Module = timm.create_model(name, pretrained=False, **kwargs)
    return model


def data_config_of(model: torch.nn.Module, input_size: int | None) -> DataConfig:
    """Input size and normalisation from the model's pretrained config (timm's defaults)."""
    config: dict[str, Any] = getattr(model, "pretrained_cfg", {})
    side = input_size or int(config.get("input_size", (3, 224, 224))[-1])
    mean = tuple(float(v) for v in config.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in config.get("std", (0.229, 0.224, 0.225)))
    return DataConfig(
        size=side,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        interpolation=str(config.get("interpolation", "bicubic")),
        crop_pct=float(config.get("crop_pct", 0.875)),
    )


def classifier_keys(model: torch.nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier", ())
    return (names,) if isinstance(names, str) else tuple(names)


def load_weights(model: torch.nn.Module, storage: Storage, uri: str) -> None:
    """Pretrained safetensors weights; a classifier of another shape is left initialised."""
    try:
        state = load_safetensors(storage.read(uri))
    except ObjectNotFound as error:
        raise ConfigError(f"pretrained weights not found: {error}") from error
    except Exception as error:  # safetensors raises its own error types for bad files
        raise ConfigError(f"pretrained weights at {uri} are not safetensors: {error}") from error
    own = model.state_dict()
    heads = classifier_keys(model)
    dropped = [
        key
        for key, value in state.items()
        if key in own and own[key].shape != value.shape and key.startswith(heads)
    ]
    for key in dropped:
        del state[key]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape outside the classifier
        raise ConfigError(f"weights at {uri} do not fit model: {str(error)[:500]}") from error
    missing = [key for key in missing if not key.startswith(heads)]
    if missing or unexpected:
        raise ConfigError(
            f"weights at {uri} do not fit this model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    log.info("loaded pretrained weights from %s (new classifier: %s)", uri, bool(dropped))
