"""timm models by name, never from a hub: weights come only from a URI the user gives."""

import logging
from typing import Any

import timm
import torch
from safetensors.torch import load as load_safetensors

from tailor_trainer.data import DataConfig
from tailor_trainer.errors import ConfigError
from tailor_trainer.storage import ObjectNotFound, Storage, StorageError

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


def in_classifier(name: str, heads: tuple[str, ...]) -> bool:
    """Whether a parameter or state key belongs to one of the classifier modules named
    (`fc` holds `fc.weight`, not `fc1.weight`)."""
    return any(name == head or name.startswith(head + ".") for head in heads)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> bool:
    """Strict loading, except a classifier: one of another shape (or none at all) is left
    as initialised, and one the model does not have (a detection backbone, built with
    no classifier) is ignored. Returns whether the classifier was left initialised."""
    own = model.state_dict()
    heads = classifier_keys(model)
    dropped = [
        key
        for key, value in state.items()
        if in_classifier(key, heads) and (key not in own or own[key].shape != value.shape)
    ]
    state = {key: value for key, value in state.items() if key not in dropped}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape outside the classifier
        raise ConfigError(f"weights at {source} do not fit model: {str(error)[:500]}") from error
    missing = [key for key in missing if not in_classifier(key, heads)]
    if missing or unexpected:
        raise ConfigError(
            f"weights at {source} do not fit this model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    kept = any(in_classifier(key, heads) for key in state)
    return not kept


def load_weights(model: torch.nn.Module, storage: Storage, uri: str) -> None:
    """Pretrained safetensors weights; a classifier of another shape is left initialised."""
    try:
        state = load_safetensors(storage.read(uri))
    except ObjectNotFound as error:
        raise ConfigError(f"pretrained weights not found: {error}") from error
    except StorageError:
        raise  # transient: another attempt may read them
    except Exception as error:  # safetensors raises its own error types for bad files
        raise ConfigError(f"pretrained weights at {uri} are not safetensors: {error}") from error
    new_head = load_state(model, state, uri)
    log.info("loaded pretrained weights from %s (new classifier: %s)", uri, new_head)
