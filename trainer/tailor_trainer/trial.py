"""Wires the factories into one trial: data, model (a catalogued backbone's weights, or
the user's own), optimizer, scheduler, step, books."""

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader

from tailor_contract import Hyperparameters, TrialConfig
from tailor_trainer import checkpoint
from tailor_trainer.cache import CachedReader, default_cache_dir
from tailor_trainer.coco import ImageEntry
from tailor_trainer.config import primary_metric_of
from tailor_trainer.data import (
    CocoImages,
    DataConfig,
    EpochBatchSampler,
    cpu_threads,
    create_loader,
    create_transform,
    loader_workers,
    steps_per_epoch,
    total_steps,
    usable_cpus,
)
from tailor_trainer.datasets import LabelledDataset, class_counts, load_dataset
from tailor_trainer.detection.data import DetectionImages
from tailor_trainer.detection.data import collate as collate_detections
from tailor_trainer.detection.factory import create_detector
from tailor_trainer.detection.model import Detector
from tailor_trainer.distributed import World
from tailor_trainer.divergence import DivergenceMonitor, chance_loss
from tailor_trainer.errors import ConfigError
from tailor_trainer.lineage import Lineage
from tailor_trainer.loop import (
    Autocast,
    StepRunner,
    create_autocast,
    create_loss,
    prepare_model,
    uses_channels_last,
)
from tailor_trainer.model import create_model, data_config_of, load_weights
from tailor_trainer.optim import Schedule, create_optimizer, scheduler_for
from tailor_trainer.pretrained import backbone_data_config, check_backbone_config, load_backbone
from tailor_trainer.probe import probe_classifier
from tailor_trainer.storage import Storage

log = logging.getLogger(__name__)
Loader = DataLoader[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Books:
    """What the trial has done so far; saved in every checkpoint, restored on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    images_seen: int = 0
    gpu_seconds_before: float = 0.0  # calibrated GPU-seconds of earlier attempts
    best_value: float | None = None
    best_step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluation's
    best_metrics: dict[str, float] = field(default_factory=dict)  # the exported weights'
    confusion_matrix: list[list[int]] = field(default_factory=list)
    per_class_ap: list[float | None] = field(default_factory=list)  # detection, by class
    evaluated_at: int = -1
    resumed_from: int | None = None
    # The linear probe, when the recipe has one: L-BFGS iterations, training images used.
    probe_iterations: int | None = None
    probe_images: int = 0
    # A schedule shortened to what the allowance fits: the plan it was fitted from, and
    # where it now ends (a resumed attempt of the same plan keeps it).
    planned_steps: int | None = None
    fitted_steps: int | None = None

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def restore(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if hasattr(self, key):
                setattr(self, key, value)


@dataclass
class Trial:
    config: TrialConfig
    hp: Hyperparameters
    world: World
    storage: Storage
    dataset: LabelledDataset
    data_config: DataConfig
    model: torch.nn.Module  # what the step runs: maybe DDP- or compile-wrapped
    plain: torch.nn.Module  # the same parameters, unwrapped: evaluate, save, export
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    schedule: Schedule  # the scheduler's warmup and cosine, and where they end
    runner: StepRunner
    sampler: EpochBatchSampler
    train_loader: Loader
    eval_loader: Loader | None  # main rank only
    probe_loader: Loader | None  # probe recipes: the whole train split, eval transform
    per_epoch: int
    total_steps: int
    autocast: Autocast
    monitor: DivergenceMonitor
    primary_metric: str
    lineage: Lineage  # what its checkpoints record: job UID, trial, the attempts so far
    books: Books = field(default_factory=Books)

    @property
    def multilabel(self) -> bool:
        return self.dataset.task == "multilabel"

    @property
    def detection(self) -> bool:
        return self.dataset.task == "detection"

    @property
    def global_batch(self) -> int:
        return self.sampler.batch_size * self.world.size

    def count_probe(self, iterations: int, images: int) -> None:
        """Books a fitted probe. A linear_probe trial's steps are its L-BFGS iterations
        and its epoch the one pass over the training images (a fraction, when the
        allowance cut that pass short); probe_finetune counts the images only, its
        steps are the fine-tuning's."""
        books = self.books
        books.probe_iterations, books.probe_images = iterations, images
        books.images_seen += images
        if self.hp.recipe == "linear_probe":
            books.step = iterations
            self.settle_probe_steps()

    def settle_probe_steps(self) -> None:
        """A linear_probe trial's step counts once its probe is known (also on resume)."""
        books = self.books
        if self.hp.recipe != "linear_probe" or books.probe_iterations is None:
            return
        iterations = max(1, books.probe_iterations)
        self.total_steps = books.step
        share = books.probe_images / max(1, len(self.dataset.train))
        self.per_epoch = max(1, round(iterations / max(share, 1e-9)))

    def shorten(self, total: int) -> None:
        """The schedule ends at `total` instead of the planned steps (what the allowance
        fits); the books remember it for a resumed attempt of the same plan."""
        books = self.books
        books.planned_steps = books.planned_steps or self.total_steps
        books.fitted_steps = total
        self.schedule.shorten(total)
        self.total_steps = total


def seed_everything(seed: int, rank: int) -> None:
    # Ranks differ in augmentation randomness; the sampler's order comes from `seed` alone.
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)


def _class_frequencies(dataset: LabelledDataset) -> np.ndarray:
    counts = class_counts(dataset.train)
    total = max(1, len(dataset.train))
    return np.array([counts[i] / total for i in range(len(dataset.classes))])


def _probe_order(entries: tuple[ImageEntry, ...], seed: int) -> tuple[ImageEntry, ...]:
    """A seeded shuffle: a probe cut short by the allowance still sees every class."""
    shuffled = list(entries)
    random.Random(seed).shuffle(shuffled)
    return tuple(shuffled)


def build_trial(config: TrialConfig, hp: Hyperparameters, world: World, storage: Storage) -> Trial:
    task = config.task
    if task == "detection" and hp.recipe != "train":
        raise ConfigError(f"recipe {hp.recipe!r} is for classification; detection trains")
    if task != "detection" and hp.detector != "fcos":
        raise ConfigError(f"detector {hp.detector!r} is for detection, not {task}")
    check_backbone_config(config)
    dataset = load_dataset(
        storage,
        config.dataset.train,
        config.dataset.evaluation,
        task,
        hp.eval_fraction,
        config.seed,
    )
    classes = len(dataset.classes)
    backbone = config.backbone
    detector: Detector | None = None
    if task == "detection":
        detector, data_config = create_detector(config, hp, storage, classes, len(dataset.train))
        plain: torch.nn.Module = detector
    else:
        side = hp.input_size or (backbone.input_size if backbone else None)
        plain = create_model(config.model, classes, input_size=side, drop_path=hp.drop_path)
        if backbone is not None:
            load_backbone(plain, storage, backbone)
            data_config = backbone_data_config(plain, backbone, hp)
        else:
            if config.pretrained:
                load_weights(plain, storage, config.pretrained)
            data_config = data_config_of(plain, hp.input_size)
    probing = hp.recipe != "train"
    if probing:
        probe_classifier(plain)
        if backbone is None and not config.pretrained:
            log.warning("recipe %s on a randomly initialised %s", hp.recipe, config.model)
    multilabel = task == "multilabel"
    reader = CachedReader(storage, default_cache_dir())
    pin = world.device.type == "cuda"

    def images(entries: tuple[ImageEntry, ...], training: bool) -> CocoImages | DetectionImages:
        strength = hp.augmentation if training else 0.0
        if detector is not None:
            return DetectionImages(entries, reader, data_config, training, strength, hp.hflip)
        transform = create_transform(data_config, training, strength, hp.hflip)
        return CocoImages(entries, reader, transform, classes, multilabel)

    collate = collate_detections if detector is not None else None
    train_set = images(dataset.train, True)
    sampler = EpochBatchSampler(len(train_set), hp.batch_size, config.seed, world.rank, world.size)
    cpus = usable_cpus() / world.size  # the processes of one pod share its CPUs
    torch.set_num_threads(cpu_threads(cpus))
    workers = loader_workers(hp.workers, cpus, steps_per_epoch(sampler))
    if workers != hp.workers:
        log.info("%d data loader workers, not %d: %.1f CPUs per process", workers, hp.workers, cpus)
    train_loader = create_loader(
        train_set, batch_sampler=sampler, workers=workers, pin_memory=pin, collate=collate
    )
    eval_loader = None
    if world.is_main:
        eval_loader = create_loader(
            images(dataset.evaluation, False),
            batch_size=hp.batch_size * 2,
            workers=workers,
            pin_memory=pin,
            collate=collate,
        )
    probe_loader = None
    if probing:
        # Every rank computes the same features (and fits the same probe): no rank waits.
        probe_set = CocoImages(
            _probe_order(dataset.train, config.seed),
            reader,
            create_transform(data_config, False, 0.0),
            classes,
            multilabel,
        )
        probe_loader = create_loader(
            probe_set, batch_size=hp.batch_size * 2, workers=workers, pin_memory=pin
        )
    model = prepare_model(plain, world, hp)
    optimizer = create_optimizer(plain, hp)
    per_epoch = steps_per_epoch(sampler)
    steps = total_steps(hp.epochs, hp.max_steps, per_epoch)
    schedule = Schedule.of(hp, steps)
    scheduler = scheduler_for(optimizer, schedule)
    autocast = create_autocast(world.device, hp)
    if detector is not None:
        detector.autocast = autocast  # its convolutions only; boxes and losses in fp32
    runner = StepRunner(
        model,
        optimizer,
        scheduler,
        None if detector is not None else create_loss(multilabel, hp.label_smoothing),
        world.device,
        autocast,
        uses_channels_last(world.device, hp),
        hp.grad_clip,
    )
    chance = chance_loss(task, _class_frequencies(dataset), hp.label_smoothing)
    log.info(
        "trial %s attempt %d: %s (%s), recipe %s, %d classes, %d train / %d eval images, "
        "%d steps (%d per epoch, batch %d x %d), input %dpx, device %s",
        config.trial,
        config.attempt,
        config.model,
        f"backbone {backbone.name}" if backbone else config.pretrained or "no pretrained weights",
        hp.recipe,
        classes,
        len(dataset.train),
        len(dataset.evaluation),
        steps,
        per_epoch,
        sampler.batch_size,
        world.size,
        data_config.size,
        world.device,
    )
    return Trial(
        config=config,
        hp=hp,
        world=world,
        storage=storage,
        dataset=dataset,
        data_config=data_config,
        model=model,
        plain=plain,
        optimizer=optimizer,
        scheduler=scheduler,
        schedule=schedule,
        runner=runner,
        sampler=sampler,
        train_loader=train_loader,
        eval_loader=eval_loader,
        probe_loader=probe_loader,
        per_epoch=per_epoch,
        total_steps=steps,
        autocast=autocast,
        monitor=DivergenceMonitor(chance, hp.divergence_patience_steps),
        primary_metric=primary_metric_of(config),
        lineage=Lineage.first(config),
    )


def checkpoint_state(trial: Trial, gpu_seconds_now: float) -> dict[str, Any]:
    books = trial.books.state()
    books["gpu_seconds_before"] = gpu_seconds_now  # what the next attempt inherits
    return {
        "format": 2,
        "lineage": trial.lineage.state(),
        "model_name": trial.config.model,
        "classes": trial.dataset.class_names,
        "model": checkpoint.unwrap(trial.model).state_dict(),
        "optimizer": trial.optimizer.state_dict(),
        "scheduler": trial.scheduler.state_dict(),
        "divergence": trial.monitor.state_dict(),
        "books": books,
        "rng": checkpoint.rng_state(),
    }


def restore(trial: Trial, state: dict[str, Any], uri: str) -> None:
    """Continues the checkpoint's training; its lineage gains this attempt when it is
    the same trial's (run.py loads another's only when `resume` names it)."""
    if state.get("model_name") != trial.config.model:
        raise ConfigError(f"checkpoint {uri} is for model {state.get('model_name')!r}")
    if state.get("classes") != trial.dataset.class_names:
        raise ConfigError(f"checkpoint {uri} was trained on other classes")
    trial.plain.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    trial.scheduler.load_state_dict(state["scheduler"])
    trial.monitor.load_state_dict(state["divergence"])
    trial.books.restore(state["books"])
    trial.books.resumed_from = trial.books.step
    trial.settle_probe_steps()
    books = trial.books
    if books.fitted_steps is not None and books.planned_steps == trial.total_steps:
        trial.shorten(books.fitted_steps)  # the same plan: the schedule it was fitted to
    else:
        books.planned_steps = books.fitted_steps = None  # a new plan (a promotion)
    checkpoint.restore_rng(state["rng"])
    previous = Lineage.of(state)
    trial.lineage = previous.continued_by(trial.config) if previous else trial.lineage
    log.info(
        "resumed from %s at step %d (epoch %d); lineage: %s",
        uri,
        trial.books.step,
        trial.books.epoch,
        trial.lineage.describe(),
    )
