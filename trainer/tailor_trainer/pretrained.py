"""Catalogued pretrained backbones: their weights read, digest-checked and loaded, and
the input size and normalisation they were pretrained with.

A trial's `TrialConfig.backbone` names exactly one catalog entry; the validation pod
checks every entry of `TrialConfig.catalog` with `verify_backbone` before any GPU runs,
so a platform engineer hears about a bad entry before a search depends on it.
"""

import hashlib
import logging

import timm
import torch
from safetensors.torch import load as load_safetensors

from tailor_contract import Hyperparameters, PretrainedBackbone, TrialConfig
from tailor_trainer.data import DataConfig
from tailor_trainer.errors import ConfigError
from tailor_trainer.model import create_model, data_config_of, load_state
from tailor_trainer.storage import ObjectNotFound, Storage

log = logging.getLogger(__name__)


def sha256_digest(data: bytes) -> str:
    """The digest in the catalog's notation: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_backbone_config(config: TrialConfig) -> None:
    """The trial's model must be the backbone's architecture; an explicit `pretrained`
    URI may only repeat the backbone's weights."""
    backbone = config.backbone
    if backbone is None:
        return
    if config.model != backbone.architecture:
        raise ConfigError(
            f"model {config.model!r} is not the architecture of backbone {backbone.name!r} "
            f"({backbone.architecture!r}): its weights load only into that architecture"
        )
    if config.pretrained and config.pretrained != backbone.weights:
        raise ConfigError(
            f"pretrained {config.pretrained!r} and backbone {backbone.name!r} "
            f"({backbone.weights}) name different weights: give one of them"
        )


def read_backbone_weights(
    storage: Storage, backbone: PretrainedBackbone
) -> dict[str, torch.Tensor]:
    """The entry's weights, after checking their digest. Missing weights, a digest
    mismatch and a file that is not safetensors are ConfigErrors naming the backbone;
    a transient storage error stays a StorageError (another attempt may read them)."""
    try:
        data = storage.read(backbone.weights)
    except ObjectNotFound as error:
        raise ConfigError(
            f"backbone {backbone.name!r}: its weights are not found: {error}"
        ) from error
    actual = sha256_digest(data)
    if actual != backbone.digest:
        raise ConfigError(
            f"backbone {backbone.name!r}: the weights at {backbone.weights} have digest "
            f"{actual}, but the catalog expects {backbone.digest}; re-import the weights "
            f"or correct the entry's digest"
        )
    try:
        return load_safetensors(data)
    except Exception as error:  # safetensors raises its own error types for bad files
        raise ConfigError(
            f"backbone {backbone.name!r}: the weights at {backbone.weights} are not "
            f"safetensors: {error}"
        ) from error


def load_backbone(model: torch.nn.Module, storage: Storage, backbone: PretrainedBackbone) -> None:
    """Loads the entry's weights into model (built from its architecture): strictly,
    except a classifier of another shape, which stays as initialised."""
    state = read_backbone_weights(storage, backbone)
    try:
        new_head = load_state(model, state, f"{backbone.weights} (backbone {backbone.name!r})")
    except ConfigError as error:
        raise ConfigError(f"backbone {backbone.name!r}: {error}") from error
    log.info(
        "loaded backbone %s (%s, %s) from %s (new classifier: %s)",
        backbone.name,
        backbone.architecture,
        backbone.pretrained_on or "pretraining data not stated",
        backbone.weights,
        new_head,
    )


def backbone_data_config(
    model: torch.nn.Module, backbone: PretrainedBackbone, hp: Hyperparameters
) -> DataConfig:
    """The input the weights were pretrained with: the entry's normalisation and
    interpolation, its input size unless the trial sets one; crop_pct from timm."""
    timm_default = data_config_of(model, hp.input_size or backbone.input_size)
    return DataConfig(
        size=hp.input_size or backbone.input_size,
        mean=backbone.mean,
        std=backbone.std,
        interpolation=backbone.interpolation,
        crop_pct=timm_default.crop_pct,
    )


def verify_backbone(storage: Storage, backbone: PretrainedBackbone) -> None:
    """For validation: the architecture exists, the weights are readable, their digest
    matches and they load strictly into `timm.create_model(architecture)` (the
    classifier may differ). Raises ConfigError (or StorageError) with what to fix."""
    if not timm.is_model(backbone.architecture):
        raise ConfigError(
            f"timm {timm.__version__} has no architecture {backbone.architecture!r}: "
            f"correct the entry's architecture (a timm model name)"
        )
    state = read_backbone_weights(storage, backbone)
    # timm's default head (ImageNet-1k): the usual shape of a catalogued classifier.
    model = create_model(backbone.architecture, 1000, input_size=backbone.input_size)
    try:
        load_state(model, state, backbone.weights)
    except ConfigError as error:
        raise ConfigError(
            f"the weights do not load into timm {timm.__version__}'s "
            f"{backbone.architecture!r}: saved from another architecture, or with keys "
            f"timm does not use (convert them when importing). {error}"
        ) from error
