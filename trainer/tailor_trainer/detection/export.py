"""The detection export bundle: the detector's dense core (images in, every point's boxes
and class scores out, no NMS) as safetensors, TorchScript and ONNX, with one
config.json that predict reads; NMS is `model.postprocess`, shared by evaluation and
both predict backends.

The ONNX check: on sample inputs, ONNX's raw outputs within 1e-4 (scores) and 1e-2 px
(boxes) of PyTorch's; where they are not, ONNX must be as faithful as PyTorch itself:
its distance from the exact (float64) outputs on the samples at most 8 times PyTorch's
own float32 distance from them. And ONNX's detections, scored
against PyTorch's as ground truth, at mAP >= 0.99 (where PyTorch detects nothing, ONNX
must detect nothing either); where they do not, scored against the exact (float64)
detections, ONNX may miss 0.01 plus 8 times what PyTorch's own float32 detections miss
(near-tied boxes of a weak detector flip at the score cut and in NMS under rounding
alone: 0.9886 against PyTorch's refused a RetinaNet in CI). The input side is fixed
(the points depend on it); the batch is dynamic.
"""

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from tailor_trainer.detection.metrics import ImageBoxes, detection_metrics
from tailor_trainer.detection.model import Detector, postprocess
from tailor_trainer.errors import ExportRefused

SCORE_TOLERANCE = 1e-4
BOX_TOLERANCE = 1e-2  # pixels
MIN_MAP = 0.99
# Two float32 computations of one network (other kernels, other summation orders) each
# stray from the exact result; a trained EfficientNet-B0 detector's ONNX boxes were 1.6
# times as far from float64's as PyTorch's own (0.050 and 0.032 px at 128 px), its
# scores 2.6 times (6.7e-5 and 2.5e-5); a trained FCOS's ONNX scores 4.9 times (4.2e-4
# and 8.6e-5) in CI, with detections that agreed. A mistranslated operator is off by
# orders of magnitude, not by 8x.
RAW_ERROR_FACTOR = 8.0
# Detections flip at the score cut and in NMS in proportion to how far the raw outputs
# moved, so they get the raw outputs' factor: a from-scratch FCOS on 40 images in CI
# missed 0.104 of the exact detections where PyTorch's float32 missed 0.017 (6.2 times)
# and was refused at 4. A wrong translation misses most of them.
DETECTIONS_ERROR_FACTOR = RAW_ERROR_FACTOR
FILES = ("model.safetensors", "config.json", "model.torchscript.pt", "model.onnx")
OUTPUTS = ["boxes", "scores"]


class DetectionExportError(ExportRefused):
    """The exported detector does not reproduce the PyTorch one."""


def load_detector(
    architecture: str, classes: int, weights: dict[str, torch.Tensor], kind: str = "fcos"
) -> Detector:
    """The detector as trained (backbone pruned the same way), with its weights."""
    detector = Detector(architecture, classes, kind=kind)
    detector.prune_backbone()
    detector.load_state_dict(weights)
    return detector.eval()


def detector_of(meta: dict[str, Any]) -> str:
    """The head a checkpoint's metadata (or a bundle's config) was trained with; FCOS
    for those written before RetinaNet existed."""
    return str(meta.get("detector") or meta.get("hyperparameters", {}).get("detector", "fcos"))


SCORES = {
    "fcos": "(N, P, classes) sqrt(sigmoid(class) * sigmoid(centerness))",
    "retinanet": "(N, P, classes) sigmoid(class), P = points x 9 anchors",
}


def bundle_config(meta: dict[str, Any]) -> dict[str, Any]:
    data = meta["data_config"]
    kind = detector_of(meta)
    return {
        "task": "detection",
        "detector": kind,
        "architecture": meta["model"],
        "label_names": list(meta["classes"]),
        "input": {"size": data["size"], "mean": data["mean"], "std": data["std"]},
        "outputs": {
            "boxes": "(N, P, 4) x1, y1, x2, y2 in input pixels (letterboxed: divide by the "
            "scale side / max(width, height) for the image's pixels)",
            "scores": SCORES[kind],
        },
        "postprocess": {"nms_iou": 0.6, "max_detections": 300, "per_class": True},
    }


def _onnx(model: Detector, sample: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        model,
        (sample,),
        dynamo=True,
        input_names=["input"],
        output_names=OUTPUTS,
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    if program is None:
        raise DetectionExportError("torch.onnx.export returned no program")
    program.save(str(path))


def _trace(model: Detector, sample: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream, still served
        traced = torch.jit.trace(model, sample)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))


def _as_truth(found: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> ImageBoxes:
    return ImageBoxes(
        true_boxes=found["boxes"].double().numpy(),
        true_labels=found["labels"].numpy(),
        boxes=other["boxes"].double().numpy(),
        scores=other["scores"].double().numpy(),
        labels=other["labels"].numpy(),
    )


def exact_outputs(model: Detector, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes, scores) of the model computed in float64: the reference any float32
    runtime strays from by its rounding."""
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        boxes, scores = exact(samples.double())
    return boxes, scores


def _farthest(outputs: Any, exact: torch.Tensor) -> float:
    return float((torch.as_tensor(np.asarray(outputs)).double() - exact).abs().max())


def onnx_check(model: Detector, path: Path, samples: torch.Tensor) -> dict[str, float]:
    """Raw differences and the mAP of ONNX's detections against PyTorch's; raises
    DetectionExportError past the tolerances."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(OUTPUTS, {"input": samples.numpy()})
    with torch.no_grad():
        expected_boxes, expected_scores = model(samples)
    score_gaps = np.abs(scores - expected_scores.numpy()).reshape(len(samples), -1).max(axis=1)
    box_gaps = np.abs(boxes - expected_boxes.numpy()).reshape(len(samples), -1).max(axis=1)
    check = {
        "max_score_difference": float(score_gaps.max()),
        "max_box_difference": float(box_gaps.max()),
    }
    exact: tuple[torch.Tensor, torch.Tensor] | None = None

    def exact_once() -> tuple[torch.Tensor, torch.Tensor]:
        # The float64 pass is the check's slowest part: at most once, only when needed.
        nonlocal exact
        if exact is None:
            exact = exact_outputs(model, samples)
        return exact

    if (
        check["max_score_difference"] > SCORE_TOLERANCE
        or check["max_box_difference"] > BOX_TOLERANCE
    ):
        # Only then the float64 reference (slow on a CPU), on the same batch: float32
        # rounding depends on the batch (its size picks the kernels), so one sample's
        # error is a noisy measure of it; the batch's largest is a steadier one.
        exact_boxes, exact_scores = exact_once()
        check |= {
            "float32_score_error": _farthest(expected_scores, exact_scores),
            "float32_box_error": _farthest(expected_boxes, exact_boxes),
            "onnx_score_error": _farthest(scores, exact_scores),
            "onnx_box_error": _farthest(boxes, exact_boxes),
        }
        _within_float32(check, "score", SCORE_TOLERANCE, "")
        _within_float32(check, "box", BOX_TOLERANCE, " px")
    theirs = postprocess(torch.from_numpy(boxes), torch.from_numpy(scores))
    ours = postprocess(expected_boxes, expected_scores)
    check["pytorch_detections"] = sum(len(found["scores"]) for found in ours)
    if not check["pytorch_detections"]:
        # PyTorch detects nothing on the samples (an untrained detector): COCO's mAP has
        # no truth to score; ONNX agrees when it detects nothing either.
        if any(len(found["boxes"]) for found in theirs):
            check["map_against_pytorch"] = 0.0
            raise DetectionExportError("ONNX detects objects where PyTorch detects none")
        check["map_against_pytorch"] = 1.0
        return check
    check["map_against_pytorch"] = _map_against(ours, theirs, model.num_classes)
    if check["map_against_pytorch"] < MIN_MAP:
        # Detections are discontinuous in the dense outputs (the score cut, NMS's order,
        # the top-k): a weak detector's hundreds of near-tied boxes flip under rounding
        # alone. Judged as the raw outputs are: against the exact detections, ONNX may
        # disagree a few times as much as PyTorch's own float32 does.
        exact_boxes, exact_scores = exact_once()
        truth = postprocess(exact_boxes.float(), exact_scores.float())
        check["float32_map_against_exact"] = _map_against(truth, ours, model.num_classes)
        check["onnx_map_against_exact"] = _map_against(truth, theirs, model.num_classes)
        _detections_within_float32(check)
    return check


def _map_against(
    truth: list[dict[str, torch.Tensor]], found: list[dict[str, torch.Tensor]], classes: int
) -> float:
    """COCO mAP of `found`, scored with `truth`'s detections as ground truth."""
    cases = [_as_truth(mine, other) for mine, other in zip(truth, found, strict=True)]
    return float(detection_metrics(cases, classes).metrics["map"])


def _detections_within_float32(check: dict[str, float]) -> None:
    """ONNX's detections, scored against the exact ones, miss at most 1 - MIN_MAP plus
    DETECTIONS_ERROR_FACTOR times what PyTorch's float32 detections miss; else
    DetectionExportError."""
    own = 1.0 - check["float32_map_against_exact"]
    allowed = (1.0 - MIN_MAP) + DETECTIONS_ERROR_FACTOR * own
    if 1.0 - check["onnx_map_against_exact"] > allowed:
        raise DetectionExportError(
            f"ONNX detections score mAP {check['map_against_pytorch']:.4f} against "
            f"PyTorch's and {check['onnx_map_against_exact']:.4f} against the exact "
            f"(float64) ones, PyTorch's float32 {check['float32_map_against_exact']:.4f} "
            f"(allowed {1.0 - allowed:.4f})"
        )


def _within_float32(check: dict[str, float], output: str, tolerance: float, unit: str) -> None:
    """ONNX's distance from the exact outputs within the fixed tolerance or a few times
    PyTorch's own float32 distance; else DetectionExportError. `output`: box or score."""
    allowed = max(tolerance, RAW_ERROR_FACTOR * check[f"float32_{output}_error"])
    if check[f"onnx_{output}_error"] > allowed:
        raise DetectionExportError(
            f"ONNX {output} outputs are {check[f'onnx_{output}_error']:.3g}{unit} from the exact "
            f"(float64) outputs, PyTorch's float32 {check[f'float32_{output}_error']:.3g}"
            f"{unit} (allowed {allowed:.3g}{unit})"
        )


def write_detection_bundle(
    model: Detector, meta: dict[str, Any], folder: Path, samples: torch.Tensor
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Writes FILES into folder; returns (config, the ONNX check)."""
    model = model.eval().cpu()
    save_file(
        {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    config = bundle_config(meta)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    _trace(model, samples[:1], folder / "model.torchscript.pt")
    _onnx(model, samples[:2], folder / "model.onnx")
    return config, onnx_check(model, folder / "model.onnx", samples)
