"""Images and labels into batches: transforms, a resumable sampler and the loader factory."""

import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from timm.data.transforms_factory import create_transform as timm_create_transform
from torch.utils.data import DataLoader, Dataset, Sampler

from tailor_contract.nodes import CPU_REQUEST_ENV
from tailor_trainer.cache import CachedReader
from tailor_trainer.coco import ImageEntry
from tailor_trainer.errors import DatasetCorrupt
from tailor_trainer.storage import ObjectNotFound

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class DataConfig:
    """How the model wants its input; resolved from the model's pretrained config."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float


def create_transform(
    config: DataConfig, training: bool, strength: float, hflip: float = 0.5
) -> Transform:
    """timm's transforms; `strength` in [0, 1] scales every augmentation together but the
    mirroring, which is `hflip`'s (a digit mirrored is not the same digit)."""
    common: dict[str, Any] = {
        "input_size": (3, config.size, config.size),
        "mean": config.mean,
        "std": config.std,
        "interpolation": config.interpolation,
    }
    if not training or strength <= 0:
        transform: Transform = timm_create_transform(
            is_training=False, crop_pct=config.crop_pct, **common
        )
        return transform
    transform = timm_create_transform(
        is_training=True,
        # Strong crops need many images to average out; keep most of the image when mild.
        scale=(max(0.08, 1.0 - 0.92 * strength), 1.0),
        hflip=hflip,
        color_jitter=0.4 * strength,
        auto_augment=f"rand-m{round(9 * strength)}-mstd0.5-inc1" if strength >= 0.3 else None,
        re_prob=0.25 * strength if strength >= 0.6 else 0.0,
        **common,
    )
    return transform


def open_upright(data: bytes) -> Image.Image:
    """The image as RGB with its EXIF orientation applied (what a person sees, and what
    validation measured)."""
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


class CocoImages(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(
        self,
        entries: tuple[ImageEntry, ...],
        reader: CachedReader,
        transform: Transform,
        num_classes: int,
        multilabel: bool,
    ) -> None:
        self.entries = entries
        self.reader = reader
        self.transform = transform
        self.num_classes = num_classes
        self.multilabel = multilabel

    def __len__(self) -> int:
        return len(self.entries)

    def target(self, index: int) -> torch.Tensor:
        labels = self.entries[index].labels
        if self.multilabel:
            target = torch.zeros(self.num_classes)
            target[list(labels)] = 1.0
            return target
        return torch.tensor(labels[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        try:
            data = self.reader.read(entry.uri)
        except ObjectNotFound as error:
            raise DatasetCorrupt(f"image {entry.id} is missing: {error}") from error
        try:
            rgb = open_upright(data)
        except Exception as error:  # any PIL failure means the same thing: a bad image
            raise DatasetCorrupt(
                f"image {entry.id} ({entry.uri}) fails to decode: {error}"
            ) from error
        return self.transform(rgb), self.target(index)


class EpochBatchSampler(Sampler[list[int]]):
    """Per-epoch shuffled batches, sharded over ranks, that can start mid-epoch.

    The order depends only on (seed, epoch), so a resumed attempt replays exactly the
    batches the interrupted one had not reached.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        if size < world:
            raise DatasetCorrupt(f"{size} training images cannot feed {world} processes")
        self.size = size
        self.seed = seed
        self.rank = rank
        self.world = world
        # A dataset smaller than one global batch still trains, with a smaller batch.
        self.batch_size = min(batch_size, size // world)
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        """Batches in a full epoch on each rank (incomplete last batch dropped)."""
        return self.size // (self.batch_size * self.world)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        step = self.batch_size * self.world
        for number in range(self.start, len(self)):
            global_batch = order[number * step : (number + 1) * step]
            yield global_batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]


def _cgroup_quota() -> float | None:
    """The CPU limit of this process's cgroup (v2, then v1), if one is set."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
        period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        return None if int(quota) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cpu_request() -> float | None:
    """The pod's CPU request, when the operator passed it (CPU_REQUEST_ENV)."""
    try:
        millicores = int(os.environ.get(CPU_REQUEST_ENV, ""))
    except ValueError:
        return None
    return millicores / 1000 if millicores > 0 else None


def usable_cpus() -> float:
    """CPUs this process may use: its cgroup's quota when one is set (a pod's CPU
    limit), else its pod's CPU request (without a limit a container sees every core of
    the node, shared with other pods), else its CPU affinity."""
    affinity = float(len(os.sched_getaffinity(0)))
    bound = _cgroup_quota()
    if bound is None:
        bound = _cpu_request()
    return min(affinity, max(1.0, bound)) if bound is not None else affinity


def cpu_threads(cpus: float) -> int:
    """Threads for torch's CPU operations on `cpus` CPUs: one per whole CPU. torch's
    default, one per core the process sees, oversubscribes a shared node: two 1-CPU
    trainers on 2 cores with two threads each took 2.7-3.0 times as long per step
    (measured on the local cluster's real node; docs/trainer.md, "Environment")."""
    return max(1, math.floor(cpus))


def loader_workers(requested: int, cpus: float, batches: int) -> int:
    """Loader processes worth starting: no more than the CPUs beside the training
    process, nor than the batches there are. Each worker imports torch (seconds that
    are charged), so on a one-CPU slot or a tiny dataset none is better than four."""
    return max(0, min(requested, int(cpus) - 1, batches))


def create_loader(
    dataset: Dataset[Any],
    *,
    batch_sampler: EpochBatchSampler | None = None,
    batch_size: int = 64,
    workers: int,
    pin_memory: bool,
    collate: Callable[[list[Any]], Any] | None = None,
) -> DataLoader[Any]:
    """Training loaders take a batch sampler; evaluation loaders go through in order.
    `collate`: how samples make a batch (detection targets stay a list of dicts)."""
    extra: dict[str, Any] = {"prefetch_factor": 4, "persistent_workers": False} if workers else {}
    if collate is not None:
        extra["collate_fn"] = collate
    # A generator of its own: making an iterator draws worker seeds from it, and must not
    # move the global RNG, or a resumed attempt would not replay the interrupted one.
    extra["generator"] = torch.Generator().manual_seed(0)
    if batch_sampler is not None:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=workers,
            pin_memory=pin_memory,
            **extra,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        **extra,
    )


def steps_per_epoch(sampler: EpochBatchSampler) -> int:
    return max(1, len(sampler))


def total_steps(epochs: float, max_steps: int | None, per_epoch: int) -> int:
    return max_steps if max_steps is not None else max(1, math.ceil(epochs * per_epoch))
