"""The export bundle: safetensors + timm config + class names, TorchScript, ONNX checked
against PyTorch with onnxruntime, and a model card. The card is written last, so a
bundle with a card is complete."""

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import save_file
from timm.models._hub import save_config_for_hf

from tailor_trainer import checkpoint
from tailor_trainer.errors import ExportRefused
from tailor_trainer.model import create_model
from tailor_trainer.storage import Storage, StorageError, join

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4
WEIGHTS = "model.safetensors"
TORCHSCRIPT = "model.torchscript.pt"
ONNX = "model.onnx"
FILES = (WEIGHTS, "config.json", TORCHSCRIPT, ONNX)


T = TypeVar("T")


class ExportError(ExportRefused):
    """The exported model does not reproduce the PyTorch model, or cannot be written."""


def refusing(what: str, write: Callable[[], T]) -> T:
    """Runs a format's writer; its failure (an operator the format cannot express, a
    tracing error) refuses the export in words, rather than crashing the attempt into
    retries that would fail the same way. Memory and the disk are not the model's fault:
    those stay errors another attempt may not meet."""
    try:
        return write()
    except (ExportRefused, MemoryError, OSError):
        raise
    except Exception as error:
        raise ExportError(f"{what} failed: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class Exported:
    """Where the bundle is, and the sha256 of its weights as its stored card says."""

    uri: str
    digest: str


def _trace(model: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream, but it is still what many servers load.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, sample)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))


def _onnx(model: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (sample,),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path))


def onnx_max_difference(model: torch.nn.Module, path: Path, samples: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": samples.numpy()})
    with torch.no_grad():
        expected = model(samples).numpy()
    return float(np.max(np.abs(np.asarray(logits) - expected)))


def write_bundle(
    model: torch.nn.Module, meta: dict[str, Any], folder: Path, samples: torch.Tensor
) -> dict[str, Any]:
    """Writes FILES and model_card.json into folder; returns the card."""
    model = model.eval().cpu()
    save_file(
        {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    data = meta["data_config"]
    save_config_for_hf(
        model,
        str(folder / "config.json"),
        model_config={"label_names": list(meta["classes"])},
        data_config={
            "input_size": (3, data["size"], data["size"]),
            "mean": data["mean"],
            "std": data["std"],
            "interpolation": data["interpolation"],
            "crop_pct": data["crop_pct"],
        },
    )
    refusing("TorchScript tracing", lambda: _trace(model, samples[:1], folder / TORCHSCRIPT))
    refusing("ONNX export", lambda: _onnx(model, samples[:2], folder / ONNX))
    difference = onnx_max_difference(model, folder / ONNX, samples)
    if difference > ONNX_TOLERANCE:
        raise ExportError(
            f"ONNX logits differ from PyTorch's by {difference:.3g} (allowed {ONNX_TOLERANCE:g})"
        )
    check = {"samples": len(samples), "max_abs_difference": difference}
    return write_card(meta, folder, FILES, check)


def write_detection(
    weights: dict[str, torch.Tensor], meta: dict[str, Any], folder: Path, samples: torch.Tensor
) -> dict[str, Any]:
    """The detection bundle (tailor_trainer.detection.export) and its card."""
    from tailor_trainer.detection.export import FILES as DETECTION_FILES
    from tailor_trainer.detection.export import (
        detector_of,
        load_detector,
        write_detection_bundle,
    )

    model = load_detector(meta["model"], len(meta["classes"]), weights, detector_of(meta))
    # Its check's own refusals (DetectionExportError) pass through as they are.
    _, check = refusing(
        "the detector's export", lambda: write_detection_bundle(model, meta, folder, samples)
    )
    card = write_card(meta, folder, DETECTION_FILES, {"samples": len(samples), **check})
    return card


def write_card(
    meta: dict[str, Any], folder: Path, files: tuple[str, ...], check: dict[str, Any]
) -> dict[str, Any]:
    """model_card.json, last: a bundle with a card is complete."""
    card = {
        "model": meta["model"],
        "task": meta["task"],
        "classes": meta["classes"],
        "input": meta["data_config"],
        "metrics": meta["metrics"],
        "primary_metric": meta["primary_metric"],
        "step": meta["step"],
        "dataset": {
            "digest": meta["dataset_digest"],
            "train": meta["trial"]["dataset"]["train"],
            "evaluation": meta["trial"]["dataset"].get("evaluation"),
        },
        "gpu_seconds": meta["gpu_seconds"],
        "trial": meta["trial"],
        "hyperparameters": meta["hyperparameters"],
        **({"per_class_ap": meta["per_class_ap"]} if "per_class_ap" in meta else {}),
        "onnx_check": check,
        "versions": _versions(),
        "files": {name: _sha256(folder / name) for name in files},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "model_card.json").write_text(json.dumps(card, indent=2))
    return card


def _versions() -> dict[str, str]:
    import onnxruntime

    from tailor_trainer.result import versions

    return {**versions(), "onnxruntime": onnxruntime.__version__}


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def list_in_card(storage: Storage, target: str, files: dict[str, str]) -> None:
    """Adds files written after the bundle (the evaluation report: relative name -> sha256)
    to its model card, if the card is there; the page is named under "report"."""
    uri = join(target, "model_card.json")
    if not storage.exists(uri):
        return
    card = json.loads(storage.read(uri))
    card["files"] = {**card.get("files", {}), **files}
    pages = [name for name in files if name.endswith(".html")]
    if pages:
        card["report"] = pages[0]
    storage.write(uri, json.dumps(card, indent=2).encode())


def attempt_export(output: str, attempt: int) -> str:
    """Where attempt `attempt` of a trial writes its bundle: its own folder."""
    return join(output, "export", f"attempt-{attempt}")


def export_trial(
    storage: Storage,
    output: str,
    checkpoint_uri: str | None = None,
    destination: str | None = None,
    samples: int = 4,
) -> Exported:
    """Export the trial's best weights (or a named safetensors file) to destination.
    The card, written last, is read back: its weights digest is what the operator records."""
    weights, meta = checkpoint.load_best(storage, output)
    if checkpoint_uri:
        from safetensors.torch import load as load_safetensors

        weights = load_safetensors(storage.read(checkpoint_uri))
    size = int(meta["input_size"])
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, 3, size, size, generator=generator)
    target = destination or join(output, "export")
    with tempfile.TemporaryDirectory(prefix="tailor-export-") as scratch:
        folder = Path(scratch)
        if meta.get("task") == "detection":
            card = write_detection(weights, meta, folder, inputs)
        else:
            model = create_model(meta["model"], len(meta["classes"]), input_size=size)
            model.load_state_dict(weights)
            card = write_bundle(model, meta, folder, inputs)
        for name in (*card["files"], "model_card.json"):
            storage.write(join(target, name), (folder / name).read_bytes())
    stored = json.loads(storage.read(join(target, "model_card.json")))
    digest = stored.get("files", {}).get(WEIGHTS)
    if digest != card["files"][WEIGHTS]:
        # What storage returned is not what was written: another attempt may well see it right.
        raise StorageError(f"the model card stored at {target} does not name the weights written")
    log.info("exported %s (step %s) to %s", meta["model"], meta["step"], target)
    return Exported(target, digest)
