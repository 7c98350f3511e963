"""bench/detection.py (a): the trainer's detection training step against torchvision's
own FCOS loop on the same network, weights and batches (see bench/README.md)."""

import argparse
import copy
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from tailor_contract import Hyperparameters
from tailor_trainer.allowance import Allowance
from tailor_trainer.cache import CachedReader
from tailor_trainer.data import DataConfig
from tailor_trainer.datasets import load_dataset
from tailor_trainer.detection.data import DetectionImages, collate
from tailor_trainer.detection.model import Detector
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
