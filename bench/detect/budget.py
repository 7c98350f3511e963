"""bench/detection.py (b): map against budget, the real trainer stopped by its allowance,
scored on a held-out split through predict's code (see bench/README.md)."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from tailor_contract import AttemptResult
from tailor_trainer.data import DataConfig
from tailor_trainer.detection.export import detector_of, load_detector
from tailor_trainer.detection.metrics import ImageBoxes, detection_metrics
from tailor_trainer.detection.predict import DetectionModel, detect_objects, load_detection_model
from tests.trainer.detection_data import write_digits

CUDA = torch.cuda.is_available()


def _truth(document: dict[str, Any]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for image in document["images"]:
        items = [a for a in document["annotations"] if a["image_id"] == image["id"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in items)])
        labels = np.array([a["category_id"] - 1 for a in items], dtype=np.int64)
        found[image["id"]] = (boxes.reshape(-1, 4).astype(np.float64), labels)
    return found


def checkpoint_model(out: Path) -> DetectionModel:
    """The trial's best checkpoint (what an export would ship), run in this process."""
    meta = json.loads((out / "checkpoints" / "best.json").read_text())
    weights = load_file(str(out / "checkpoints" / "best.safetensors"))
    detector = load_detector(meta["model"], len(meta["classes"]), weights, detector_of(meta))
    data = meta["data_config"]
    mean, std = (tuple(float(v) for v in data[key]) for key in ("mean", "std"))
    config = DataConfig(
        int(data["size"]), (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), "bilinear", 1.0
    )

    @torch.no_grad()
    def run(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = detector(batch)
        return boxes, scores

    return DetectionModel(list(meta["classes"]), config, run, "torch")


def bundle_model(bundle: Path) -> DetectionModel:
    """The exported bundle's ONNX model, as `tailor-train predict` loads it."""
    config = (bundle / "config.json").read_text()
    return load_detection_model(
        config, lambda name: (bundle / name).read_bytes(), str(bundle), "onnx"
    )


def test_map(model: DetectionModel, test_json: Path, classes: int) -> dict[str, float]:
    """A model on the held-out test split through predict's code (letterbox, dense output,
    the shared NMS): scores from 0.05, up to 300 per image, boxes in the image's pixels."""
    document = json.loads(test_json.read_text())
    truth = _truth(document)
    index = {name: i for i, name in enumerate(model.classes)}
    cases = []
    for image in document["images"]:
        with Image.open(test_json.parent / image["file_name"]) as opened:
            picture = opened.convert("RGB")
        found = detect_objects(model, [(image["file_name"], picture)], 0.05, 300)[0].objects
        boxes, labels = truth[image["id"]]
        cases.append(
            ImageBoxes(
                true_boxes=boxes,
                true_labels=labels,
                boxes=np.array([o.box for o in found], dtype=np.float64).reshape(-1, 4),
                scores=np.array([o.confidence for o in found], dtype=np.float64),
                labels=np.array([index[o.name] for o in found], dtype=np.int64),
            )
        )
    return detection_metrics(cases, classes).metrics


def train_once(args: argparse.Namespace, data: Path, budget: float, out: Path) -> AttemptResult:
    config = {
        "job": "bench/detection",
        "job_uid": "uid-bench-detection",
        "trial": f"budget-{budget:g}",
        "attempt": 1,
        "task": "detection",
        "dataset": {"train": str(data / "train.json"), "evaluation": str(data / "eval.json")},
        "model": args.train_model,
        "hyperparameters": {
            "batch_size": args.batch,
            "input_size": args.side,
            "workers": 0,
            "augmentation": 0.3,
            "lr": 2e-3,
            # The allowance stops it: a schedule far longer than any budget, so after 25
            # warm-up steps the learning rate stays near lr (a cosine over 10,000 epochs).
            "epochs": 10_000,
            "warmup_fraction": 25 / (10_000 * -(-args.train // args.batch)),
            "eval_every_epochs": 1.0,
            "log_every_steps": 1_000,
        },
        "allowance_gpu_seconds": budget,
        "calibration_factor": 1.0,
        "gpus": 1 if CUDA else 0,
        "output": str(out),
        "export": args.export,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.config.json"
    path.write_text(json.dumps(config))
    log = out.parent / f"{out.name}.result.json"
    env = dict(os.environ, TAILOR_TERMINATION_LOG=str(log))
    done = subprocess.run(
        [sys.executable, "-m", "tailor_trainer.cli", "run", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    result = AttemptResult.model_validate_json(log.read_text())
    if done.returncode != 0:
        print(done.stderr[-3000:])
        raise SystemExit(f"the trainer failed ({done.returncode}): {result.reason}")
    return result


def budgets(args: argparse.Namespace, folder: Path) -> None:
    data = folder / "digits"
    side = (args.side, args.side * 5 // 6)  # landscape canvases: the letterbox pads them
    options = {"classes": args.classes, "side": side}
    write_digits(data, "train", args.train, seed=0, **options)
    write_digits(data, "eval", args.eval, seed=1, **options)
    test = Path(write_digits(data, "test", args.test, seed=2, **options))
    print(
        f"(b) mAP against budget: {args.train_model} from scratch, {args.classes} digit classes, "
        f"{args.train} training / {args.eval} selection / {args.test} held-out test canvases "
        f"of {args.side}px, batch {args.batch}; scored: "
        f"{'the exported ONNX bundle' if args.export else 'the best checkpoint'}"
    )
    print(
        "  budget s  used s  steps  epochs  selection map  test map  test map_50  test map_30"
        "  wall s"
    )
    for budget in (float(b) for b in args.budgets.split(",")):
        started = time.monotonic()
        out = folder / f"budget-{budget:g}"
        result = train_once(args, data, budget, out)
        if args.export:
            assert result.export_uri is not None
            model = bundle_model(Path(result.export_uri))
        else:
            model = checkpoint_model(out)
        scored = test_map(model, test, args.classes)
        print(
            f"  {budget:8.0f} {result.gpu_seconds:7.1f} {result.steps:6d} {result.epochs:7.1f}"
            f"  {result.metrics.get('map', 0.0):13.4f}  {scored['map']:8.4f}"
            f"  {scored['map_50']:11.4f}  {scored['map_30']:11.4f}"
            f"  {time.monotonic() - started:6.0f}"
        )
