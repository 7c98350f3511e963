"""Detection: (a) the trainer's detection training step against a minimal torchvision
loop on the same network, weights and batches, in this process; (b) mAP against budget:
the real trainer (`tailor-train run`, a fixed recipe, stopped by its allowance) on
generated digits (scikit-learn's real 8x8 scans pasted on canvases, tests' generator),
its best checkpoint scored through `predict`'s code on a held-out test split it never
saw (`--export`: each run exports and its ONNX bundle is scored instead).

(a) Ours: tailor_trainer's Detector (FCOS head and loss on a timm backbone + scaled
FPN), its optimizer groups, scheduler and StepRunner, and the per-step duties of
`run.Attempt` (loss read, divergence check, progress). Reference: torchvision's own
`FCOS` class wrapped around deep copies of the same backbone, pyramid and head (so the
first losses agree), torchvision's transform (resize to the same side, identity
normalisation), AdamW and a sum of its three losses: the shortest correct loop. Rounds
alternate; on a CPU, one intra-op thread and its CPU-seconds are timed, so that other
work on a shared machine moves the figures less.

(b) Seconds are the trainer's own allowance clock: on a CPU, wall seconds (on a GPU,
wall x GPUs x factor), so other work on a shared machine shrinks what a budget buys.

    .venv/bin/python bench/detection.py                      # about 11 min on 2 CPU cores
    .venv/bin/python bench/detection.py --budgets 60 --skip-throughput   # about 2 min
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests' data

from tailor_contract import AttemptResult, Hyperparameters
from tailor_trainer.allowance import Allowance
from tailor_trainer.cache import CachedReader
from tailor_trainer.data import DataConfig
from tailor_trainer.datasets import load_dataset
from tailor_trainer.detection.data import DetectionImages, collate
from tailor_trainer.detection.export import detector_of, load_detector
from tailor_trainer.detection.metrics import ImageBoxes, detection_metrics
from tailor_trainer.detection.model import Detector
from tailor_trainer.detection.predict import DetectionModel, detect_objects, load_detection_model
from tailor_trainer.distributed import World
from tailor_trainer.divergence import DivergenceMonitor
from tailor_trainer.loop import StepRunner, create_autocast, prepare_model
from tailor_trainer.optim import create_optimizer, create_scheduler
from tailor_trainer.progress import Progress
from tailor_trainer.storage import Storage
from tests.trainer.detection_data import write_digits

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
Batch = tuple[torch.Tensor, list[dict[str, torch.Tensor]]]


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def _clock() -> float:
    """CUDA: wall seconds. CPU: this thread's CPU seconds (torch runs one intra-op thread
    here), which other work on a shared machine moves far less than wall time."""
    return time.perf_counter() if CUDA else time.thread_time()


def make_batches(folder: Path, count: int, batch: int, side: int, classes: int) -> list[Batch]:
    """`count` training batches of generated digits through the trainer's own pipeline
    (letterbox, flips, jitter), built once so both loops see the very same tensors."""
    path = write_digits(
        folder, "throughput", count * batch, classes=classes, seed=11, side=(side, side)
    )
    dataset = load_dataset(Storage(), path, path, "detection", 0.0, 0)
    config = DataConfig(side, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear", 1.0)
    images = DetectionImages(
        dataset.train, CachedReader(Storage(), None), config, training=True, strength=0.3
    )
    return [
        collate([images[i] for i in range(start, start + batch)])
        for start in range(0, count * batch, batch)
    ]


def trainer_rounds(detector: Detector, batches: list[Batch]) -> Callable[[int], float]:
    hp = Hyperparameters(batch_size=len(batches[0][1]), lr=1e-3, max_steps=1_000_000)
    world = World(rank=0, local_rank=0, size=1, device=DEVICE)
    model = prepare_model(detector, world, hp)
    optimizer = create_optimizer(detector, hp)
    autocast = create_autocast(DEVICE, hp)
    detector.autocast = autocast  # as build_trial does: its convolutions only
    runner = StepRunner(
        model,
        optimizer,
        create_scheduler(optimizer, hp, 1_000_000),
        None,
        DEVICE,
        autocast,
        CUDA and hp.channels_last,
        hp.grad_clip,
    )
    monitor = DivergenceMonitor(None, hp.divergence_patience_steps)
    progress = Progress(Allowance(1e9, 1, 1.0, time.monotonic()), 10**6, 10**9, 0, False)
    sync_every = 5 if CUDA else 1  # as tailor_trainer.run.Attempt
    step = 0

    def run(steps: int) -> float:
        nonlocal step
        pending: list[torch.Tensor] = []
        _sync()
        started = _clock()
        for _ in range(steps):
            images, targets = batches[step % len(batches)]
            pending.append(runner(images, targets))
            step += 1
            if step % sync_every == 0:
                losses = torch.stack(pending).float().cpu().tolist()
                for loss in losses:
                    monitor.update(loss, step)
                progress.step(step, 0.0, losses[-1], runner.lr, len(images) * len(pending))
                pending = []
        _sync()
        return _clock() - started

    return run


class _Pyramid(torch.nn.Module):
    """Backbone + FPN as torchvision's detectors want them: images in, levels out."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(detector.backbone)
        self.fpn = copy.deepcopy(detector.fpn)
        self.indices = detector.indices
        self.out_channels = detector.fpn.layer_blocks[0][0].out_channels

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        levels = self.backbone.forward_intermediates(  # type: ignore[operator]
            images, indices=self.indices, intermediates_only=True
        )
        result: OrderedDict[str, torch.Tensor] = self.fpn(
            OrderedDict((str(i), x) for i, x in enumerate(levels))
        )
        return result


def reference_model(detector: Detector, side: int) -> torch.nn.Module:
    from torchvision.models.detection import FCOS

    model: torch.nn.Module = FCOS(
        _Pyramid(detector),
        detector.num_classes,
        min_size=side,
        max_size=side,
        image_mean=[0.0, 0.0, 0.0],  # the batches are normalised already
        image_std=[1.0, 1.0, 1.0],
        head=copy.deepcopy(detector.head),
    )
    return model


def reference_rounds(model: torch.nn.Module, batches: list[Batch]) -> Callable[[int], float]:
    """The shortest correct torchvision loop: FCOS(images, targets), summed losses,
    AdamW. On CUDA, bf16 autocast around the whole forward, as a plain loop would."""
    model = model.to(DEVICE).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    step = 0

    def run(steps: int) -> float:
        nonlocal step
        _sync()
        started = _clock()
        for _ in range(steps):
            images, targets = batches[step % len(batches)]
            step += 1
            inputs = list(images.to(DEVICE))
            wanted = [
                {"boxes": t["boxes"].to(DEVICE), "labels": t["labels"].to(DEVICE)} for t in targets
            ]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=CUDA):
                losses = model(inputs, wanted)
            loss: torch.Tensor = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            float(loss.detach())  # read every step, as a plain loop prints it
        _sync()
        return _clock() - started

    return run


def first_losses(
    detector: Detector, reference: torch.nn.Module, batch: Batch
) -> tuple[float, float]:
    images, targets = batch
    with torch.no_grad():
        ours = float(
            detector(images.to(DEVICE), [{k: v.to(DEVICE) for k, v in t.items()} for t in targets])
        )
        wanted = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        theirs = reference.to(DEVICE)(list(images.to(DEVICE)), wanted)
    return ours, float(sum(theirs.values()))


def throughput(args: argparse.Namespace, folder: Path) -> None:
    batches = make_batches(folder, 4, args.batch, args.side, args.classes)
    device = (
        torch.cuda.get_device_name()
        if CUDA
        else f"CPU, {torch.get_num_threads()} thread, images per CPU-second of it"
    )
    print(f"(a) training step, {device}, {'bf16' if CUDA else 'fp32'}, batch {args.batch}:")
    for name in args.models.split(","):
        torch.manual_seed(0)
        detector = Detector(name, args.classes)
        detector.prune_backbone()
        detector.to(DEVICE).train()
        reference = reference_model(detector, args.side)
        ours_loss, their_loss = first_losses(detector, reference, batches[0])
        ours, theirs = trainer_rounds(detector, batches), reference_rounds(reference, batches)
        ours(2)
        theirs(2)  # warm-up
        mine: list[float] = []
        others: list[float] = []
        for _ in range(args.rounds):
            mine.append(args.batch * args.steps / ours(args.steps))
            others.append(args.batch * args.steps / theirs(args.steps))
        a, b = statistics.median(mine), statistics.median(others)
        print(
            f"  {name:>16} {args.side}px: trainer {a:7.2f} img/s  torchvision FCOS loop "
            f"{b:7.2f} img/s  ratio {a / b:5.3f}  (median of {args.rounds} rounds of "
            f"{args.steps} steps; first loss {ours_loss:.4f} vs {their_loss:.4f})"
        )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50" if CUDA else "test_resnet,resnet18")
    parser.add_argument("--side", type=int, default=512 if CUDA else 96)
    parser.add_argument("--batch", type=int, default=16 if CUDA else 8)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10 if CUDA else 2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-model", default="resnet18" if CUDA else "test_resnet")
    parser.add_argument("--budgets", default="600,1800" if CUDA else "60,150,300")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--eval", type=int, default=30)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument(
        "--export", action="store_true", help="export each run and score its ONNX bundle"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-budgets", action="store_true")
    args = parser.parse_args()
    if not CUDA:
        torch.set_num_threads(1)  # as the tests and bench/trainer_throughput.py
    # Wall-clock budgets buy less on a busy machine: say how busy this one was.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="detection-bench-") as scratch:
        folder = Path(scratch)
        if not args.skip_throughput:
            throughput(args, folder)
        if not args.skip_budgets:
            budgets(args, folder)


if __name__ == "__main__":
    main()
