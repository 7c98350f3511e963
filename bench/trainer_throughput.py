"""Trainer throughput: the trainer's training step against a minimal timm loop, and the
data path (decoded, augmented images per second from MinIO, else a local folder).

Both steps run in this process on the same model, batch, precision and synthetic
tensors, alternating rounds so that drift (thermal, other work) hits both alike.
On CUDA: bf16 autocast and channels-last, resnet50 and vit_base_patch16_224 at 224 px.
On CPU: tiny models at small sizes, one intra-op thread per process as in the tests.

    .venv/bin/python bench/trainer_throughput.py [--models a,b] [--batch N] [--size PX]
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tailor_contract import Hyperparameters
from tailor_trainer.allowance import Allowance
from tailor_trainer.cache import CachedReader
from tailor_trainer.data import CocoImages, DataConfig, create_loader, create_transform
from tailor_trainer.datasets import load_dataset
from tailor_trainer.distributed import World
from tailor_trainer.divergence import DivergenceMonitor
from tailor_trainer.loop import StepRunner, create_autocast, create_loss, prepare_model
from tailor_trainer.model import create_model
from tailor_trainer.optim import create_optimizer, create_scheduler
from tailor_trainer.progress import Progress
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def trainer_rounds(name: str, batch: int, size: int, classes: int) -> Callable[[int], float]:
    """The trainer's own step, with its per-step duties: loss syncs every few steps,
    divergence check, progress gauges. Returns a function running n steps -> seconds."""
    hp = Hyperparameters(batch_size=batch, input_size=size, lr=1e-4, max_steps=1_000_000)
    world = World(rank=0, local_rank=0, size=1, device=DEVICE)
    plain = create_model(name, classes, input_size=size)
    model = prepare_model(plain, world, hp)
    optimizer = create_optimizer(plain, hp)
    runner = StepRunner(
        model,
        optimizer,
        create_scheduler(optimizer, hp, 1_000_000),
        create_loss(False, 0.1),
        DEVICE,
        create_autocast(DEVICE, hp),
        CUDA and hp.channels_last,
        hp.grad_clip,
    )
    monitor = DivergenceMonitor(None, hp.divergence_patience_steps)
    allowance = Allowance(1e9, 1, 1.0, time.monotonic())
    progress = Progress(allowance, 1_000_000, 10**9, port=0, enabled=False)
    images = torch.randn(batch, 3, size, size, device=DEVICE)
    targets = torch.randint(0, classes, (batch,), device=DEVICE)
    sync_every = 5 if CUDA else 1  # as tailor_trainer.run.Attempt does
    step = 0

    def run(steps: int) -> float:
        nonlocal step
        pending: list[torch.Tensor] = []
        _sync()
        started = time.perf_counter()
        for _ in range(steps):
            pending.append(runner(images, targets))
            step += 1
            if step % sync_every == 0:
                for loss in torch.stack(pending).float().cpu().tolist():
                    monitor.update(loss, step)
                progress.step(step, 0.0, loss, runner.lr, batch * len(pending))
                pending = []
        _sync()
        return time.perf_counter() - started

    return run


def reference_rounds(name: str, batch: int, size: int, classes: int) -> Callable[[int], float]:
    """The shortest correct timm training loop: model, AdamW, cross-entropy."""
    import timm

    kwargs: dict[str, Any] = {"img_size": size} if "vit" in name else {}
    model = timm.create_model(name, pretrained=False, num_classes=classes, **kwargs).to(DEVICE)
    if CUDA:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    images = torch.randn(batch, 3, size, size, device=DEVICE)
    if CUDA:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, classes, (batch,), device=DEVICE)
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if CUDA else contextlib.nullcontext
    )

    def run(steps: int) -> float:
        _sync()
        started = time.perf_counter()
        for _ in range(steps):
            with autocast():
                loss = F.cross_entropy(model(images).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        _sync()
        return time.perf_counter() - started

    return run


def compare_steps(name: str, batch: int, size: int, steps: int, rounds: int) -> None:
    classes = 100
    ours, reference = (
        trainer_rounds(name, batch, size, classes),
        reference_rounds(name, batch, size, classes),
    )
    ours(3)
    reference(3)  # warm-up: allocator, kernels' autotuning
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        mine.append(batch * steps / ours(steps))
        theirs.append(batch * steps / reference(steps))
    a, b = statistics.median(mine), statistics.median(theirs)
    print(
        f"  {name:>22} {size}px batch {batch}: trainer {a:9.1f} img/s  reference {b:9.1f} img/s"
        f"  ratio {a / b:5.3f}  (median of {rounds} rounds of {steps} steps)"
    )


@contextlib.contextmanager
def s3_or_local() -> Iterator[tuple[Storage, str, str]]:
    """(storage, prefix, where) in MinIO when one runs or can be started, else on disk."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        bucket = f"bench-{os.getpid()}"
        storage = Storage()
        storage._s3().create_bucket(Bucket=bucket)
        yield storage, f"s3://{bucket}/data", "MinIO at $AWS_ENDPOINT_URL"
        return
    with tempfile.TemporaryDirectory() as scratch:
        try:
            from tailor_devcluster.cluster import ClusterSettings, LocalCluster

            settings = ClusterSettings(
                state_dir=Path(scratch) / "minio", kubernetes=False, prometheus=False
            )
            cluster = LocalCluster(settings).start()
        except Exception as error:  # no binaries here: measure the local path instead
            print(f"  (no MinIO: {error}; measuring a local folder)")
            yield Storage(), str(Path(scratch) / "data"), "local folder"
            return
        try:
            assert cluster.s3 is not None
            os.environ.update(cluster.s3.environment())
            cluster.s3.client().create_bucket(Bucket="bench")
            yield Storage(), "s3://bench/data", "MinIO started for the bench"
        finally:
            cluster.stop()


def data_path(images: int, side: int, size: int, workers: int) -> None:
    with s3_or_local() as (storage, prefix, where), tempfile.TemporaryDirectory() as cache:
        spec = SyntheticSpec(
            classes=8, images_per_class=images // 8, side=side, image_format="JPEG"
        )
        uri = write(storage, prefix, spec)
        dataset = load_dataset(storage, uri, None, "classification", 0.01, 0)
        config = DataConfig(size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 0.95)
        train = CocoImages(
            dataset.train,
            CachedReader(storage, Path(cache)),
            create_transform(config, True, 0.5),
            8,
            False,
        )
        loader = create_loader(train, batch_size=64, workers=workers, pin_memory=CUDA)
        for label in ("first epoch (download + decode)", "second epoch (local cache)"):
            started = time.perf_counter()
            count = sum(len(batch) for batch, _ in loader)
            seconds = time.perf_counter() - started
            print(
                f"  {where}: {count} JPEG {side}px -> {size}px, {workers} workers, {label}: "
                f"{count / seconds:8.1f} img/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_models = "resnet50,vit_base_patch16_224" if CUDA else "test_resnet,test_vit,resnet18"
    parser.add_argument("--models", default=default_models)
    parser.add_argument("--batch", type=int, default=256 if CUDA else 32)
    parser.add_argument("--size", type=int, default=224 if CUDA else 64)
    parser.add_argument("--steps", type=int, default=20 if CUDA else 10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--skip-data", action="store_true")
    args = parser.parse_args()
    if not CUDA:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.cuda.get_device_name() if CUDA else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"training step, {device}, {'bf16 + channels-last' if CUDA else 'fp32'}:")
    for name in args.models.split(","):
        compare_steps(name, args.batch, args.size, args.steps, args.rounds)
    if not args.skip_data:
        print("data path (CocoImages + DataLoader, timm train transform):")
        data_path(args.data_images, 256, 224, args.workers)


if __name__ == "__main__":
    main()
