"""Loads the training and evaluation splits named by a DatasetRef and checks them as a whole."""

import hashlib
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from tailor_trainer.coco import Category, ClassTask, CocoSplit, ImageEntry, parse_split
from tailor_trainer.errors import DatasetCorrupt, DatasetNotFound
from tailor_trainer.problems import Problems
from tailor_trainer.storage import ObjectNotFound, Storage

DEFAULT_MIN_IMAGES_PER_CLASS = 2


@dataclass(frozen=True)
class LabelledDataset:
    task: ClassTask
    classes: tuple[Category, ...]
    train: tuple[ImageEntry, ...]
    evaluation: tuple[ImageEntry, ...]
    evaluation_is_split: bool  # True when carved out of train (no evaluation file given)
    digest: str
    annotations: int

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


def read_annotations(storage: Storage, uri: str, name: str) -> bytes:
    try:
        return storage.read(uri)
    except ObjectNotFound as error:
        raise DatasetNotFound(f"the {name} annotation file cannot be read: {error}") from error


def class_counts(entries: tuple[ImageEntry, ...]) -> Counter[int]:
    return Counter(label for entry in entries for label in entry.labels)


def check_classes(
    train: CocoSplit,
    evaluation: CocoSplit | None,
    min_images: int,
    problems: Problems,
    task: ClassTask = "classification",
) -> None:
    """Classes with too few images, empty splits, classes the evaluation never shows.
    Detection keeps images without boxes (negatives): a split needs at least one box."""
    counts = class_counts(train.images)
    for index, category in enumerate(train.categories):
        if counts[index] < min_images:
            problems.error(
                "too_few_images",
                f"class {category.name!r} (id {category.id}) has {counts[index]} training "
                f"image(s); at least {min_images} needed",
            )
    if not any(entry.labels for entry in train.images):
        problems.error("empty_split", f"train {train.uri}: no labelled image")
    if evaluation is None:
        return
    if not any(entry.labels for entry in evaluation.images):
        what = "box to score a detector on" if task == "detection" else "labelled image"
        problems.error("empty_split", f"evaluation {evaluation.uri}: no {what}")
        return
    seen = class_counts(evaluation.images)
    for index, category in enumerate(train.categories):
        if not seen[index]:
            problems.warn(
                "class_missing_from_evaluation", f"class {category.name!r} has no evaluation image"
            )


def parse_dataset(
    storage: Storage,
    train_uri: str,
    evaluation_uri: str | None,
    task: ClassTask,
    problems: Problems,
    min_images: int = DEFAULT_MIN_IMAGES_PER_CLASS,
) -> tuple[CocoSplit | None, CocoSplit | None]:
    """Both splits parsed and cross-checked; missing files raise DatasetNotFound."""
    train_bytes = read_annotations(storage, train_uri, "train")
    evaluation_bytes = (
        read_annotations(storage, evaluation_uri, "evaluation") if evaluation_uri else None
    )
    train = parse_split("train", train_uri, train_bytes, task, problems)
    evaluation = None
    if evaluation_uri and evaluation_bytes is not None:
        classes = train.categories if train is not None else None
        evaluation = parse_split(
            "evaluation", evaluation_uri, evaluation_bytes, task, problems, classes
        )
    if train is not None:
        check_classes(train, evaluation, min_images, problems, task)
    return train, evaluation


def digest_of(*splits: CocoSplit | None) -> str:
    combined = hashlib.sha256()
    for split in splits:
        if split is not None:
            combined.update(split.digest.encode())
    return "sha256:" + combined.hexdigest()


def stratified_split(
    entries: tuple[ImageEntry, ...], fraction: float, seed: int
) -> tuple[tuple[ImageEntry, ...], tuple[ImageEntry, ...]]:
    """(train, evaluation): each label group gives `fraction` of itself, at least one image."""
    groups: dict[int, list[ImageEntry]] = defaultdict(list)
    for entry in entries:
        # Multilabel images go with their first label; unlabelled negatives form a group.
        groups[entry.labels[0] if entry.labels else -1].append(entry)
    generator = random.Random(seed)
    train: list[ImageEntry] = []
    evaluation: list[ImageEntry] = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda e: e.id)
        generator.shuffle(members)
        take = min(len(members) - 1, max(1, math.floor(len(members) * fraction)))
        evaluation.extend(members[:take])
        train.extend(members[take:])
    return tuple(sorted(train, key=lambda e: e.id)), tuple(sorted(evaluation, key=lambda e: e.id))


def load_dataset(
    storage: Storage,
    train_uri: str,
    evaluation_uri: str | None,
    task: ClassTask,
    eval_fraction: float,
    seed: int,
) -> LabelledDataset:
    """The dataset a run trains on; any structural defect raises DatasetCorrupt.

    Images are not decoded here (validation did that on the CPU before any GPU);
    a run that meets a bad image later fails then.
    """
    problems = Problems()
    train, evaluation = parse_dataset(storage, train_uri, evaluation_uri, task, problems)
    if train is None or not problems.ok:
        raise DatasetCorrupt(
            f"dataset corrupt: {problems.summary()}", problems=problems.error_examples
        )
    if evaluation is not None:
        train_images, evaluation_images = train.images, evaluation.images
    else:
        train_images, evaluation_images = stratified_split(train.images, eval_fraction, seed)
    return LabelledDataset(
        task=task,
        classes=train.categories,
        train=train_images,
        evaluation=evaluation_images,
        evaluation_is_split=evaluation is None,
        digest=digest_of(train, evaluation),
        annotations=train.annotations + (evaluation.annotations if evaluation else 0),
    )
