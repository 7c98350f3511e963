"""Checkpoints under the trial's output: `last.pt` to resume, `best.*` to export.

Every object is written atomically through Storage (in S3: one PUT or one multipart
upload straight to the key), so an attempt killed while saving leaves the previous
checkpoint intact, never a torn one, and no temporary object behind.
"""

import io
import json
import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from tailor_contract import TrialConfig
from tailor_trainer.errors import ConfigError
from tailor_trainer.lineage import check_own
from tailor_trainer.storage import ObjectNotFound, Storage, join

log = logging.getLogger(__name__)

LAST = "checkpoints/last.pt"
BEST_WEIGHTS = "checkpoints/best.safetensors"
BEST_META = "checkpoints/best.json"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers (their keys carry prefixes)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def rng_state() -> dict[str, Any]:
    """Every generator augmentation draws from (timm's RandAugment uses all three)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    assert not isinstance(keys, str)  # legacy=True: a tuple, not a dict
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # As a tensor and plain numbers: weights_only loading refuses numpy arrays.
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_last(storage: Storage, output: str, state: dict[str, Any]) -> str:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    uri = join(output, LAST)
    storage.write(uri, buffer)  # the buffer itself: no second copy of the checkpoint
    return uri


def find_resume(storage: Storage, output: str, explicit: str | None) -> str | None:
    """The checkpoint to resume from: the one named, else the latest under output."""
    if explicit:
        if not storage.exists(explicit):
            raise ConfigError(f"the checkpoint to resume from does not exist: {explicit}")
        return explicit
    uri = join(output, LAST)
    return uri if storage.exists(uri) else None


def load(storage: Storage, uri: str) -> dict[str, Any]:
    data = storage.read(uri)
    # weights_only: a checkpoint is data, and loading it must not run code.
    state: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state


@dataclass(frozen=True)
class ResumePoint:
    uri: str
    state: dict[str, Any]


def resume_point(storage: Storage, config: TrialConfig) -> ResumePoint | None:
    """The checkpoint the attempt continues, loaded: the one `resume` names (a deliberate
    choice, whoever wrote it), else `last.pt` under output if this job's trial wrote it.
    Another's raises OutputTaken (a ConfigError) before it is used."""
    uri = find_resume(storage, config.output, config.resume)
    if uri is None:
        return None
    state = load(storage, uri)
    if not config.resume:
        check_own(state, config, uri)
    return ResumePoint(uri, state)


def save_best(storage: Storage, output: str, model: torch.nn.Module, meta: dict[str, Any]) -> str:
    """Weights (safetensors) first, then the metadata naming them: a reader that finds
    the metadata always finds weights at least as new."""
    # Clones: safetensors refuses tensors that share memory (tied weights).
    tensors = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
    uri = join(output, BEST_WEIGHTS)
    storage.write(uri, save_safetensors(tensors))
    storage.write(join(output, BEST_META), json.dumps(meta, indent=2).encode())
    return uri


def load_best(storage: Storage, output: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        meta = json.loads(storage.read(join(output, BEST_META)))
        weights = load_safetensors(storage.read(join(output, BEST_WEIGHTS)))
    except ObjectNotFound as error:
        raise ConfigError(f"no evaluated checkpoint to export under {output}: {error}") from error
    return weights, meta
