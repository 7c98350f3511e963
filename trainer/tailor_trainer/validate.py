"""`tailor-train validate`: check a dataset on the CPU before any GPU is spent on it, and
the catalogued backbones the search may fine-tune (their weights read, digest-checked and
loaded into their architecture), so a bad catalog entry is named before a trial needs it.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tailor_contract import AttemptResult, DatasetFacts, ExitCode, GivenTrial, PretrainedBackbone
from tailor_contract.cost import REFERENCE, CostModel, minimum_given_trials_gpu_seconds
from tailor_trainer import ownership
from tailor_trainer.coco import ClassTask, CocoSplit, ImageEntry
from tailor_trainer.configcheck import config_problems
from tailor_trainer.datasets import class_counts, digest_of, parse_dataset, stratified_split
from tailor_trainer.errors import ConfigError, DatasetNotFound
from tailor_trainer.estimate import estimate_min_gpu_seconds
from tailor_trainer.imagecheck import check_images
from tailor_trainer.ownership import OutputTaken
from tailor_trainer.pixels import MAX_EVAL_IMAGES, MAX_TRAIN_IMAGES, pixel_reference, sample_ids
from tailor_trainer.problems import Problems
from tailor_trainer.storage import ObjectNotFound, Storage, StorageError

log = logging.getLogger(__name__)
MAX_REASON = 400  # characters of an unusable backbone's reason


@dataclass(frozen=True)
class OutputClaim:
    """The job's output prefix, which a successful validation claims for the job."""

    output: str
    job: str  # namespace/name
    uid: str


@dataclass(frozen=True)
class ValidateOptions:
    annotations: str
    evaluation: str | None = None
    task: ClassTask = "classification"
    budget_gpu_seconds: float | None = None
    input_size: int | None = None  # None: the side the search derives from the images
    model: str | None = None  # the backbone the estimate prices; None: the ladder's cheapest
    cost: CostModel = REFERENCE  # the prices of the estimate: the operator's, in its config
    min_images_per_class: int = 2
    workers: int = 16
    max_problems: int = 50
    catalog: tuple[PretrainedBackbone, ...] = ()  # backbones to verify
    eval_fraction: float = 0.2  # the trainer's split when no evaluation file is given
    seed: int = 0  # ... and its seed: the references are about the split it will use
    candidate_models: tuple[str, ...] = ()  # spec.search.models: each must exist
    given_trials: tuple[GivenTrial, ...] = ()  # spec.search.trials: checked and priced
    claim: OutputClaim | None = None  # the operator's validation: the job's output prefix


@dataclass(frozen=True)
class ValidationReport:
    code: ExitCode
    result: AttemptResult
    warnings: list[str]
    warning_counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        report = self.result.model_dump(mode="json")
        report["ok"] = self.code == ExitCode.SUCCESS
        report["code"] = int(self.code)
        report["warnings"] = self.warnings
        report["warning_counts"] = self.warning_counts
        return report


def selection_split(
    train: CocoSplit, evaluation: CocoSplit | None, eval_fraction: float, seed: int
) -> tuple[tuple[ImageEntry, ...], tuple[ImageEntry, ...]]:
    """(what the trials learn from, what they are scored and selected by): the
    evaluation file, or the trainer's own stratified split of train."""
    if evaluation is not None:
        return train.images, evaluation.images
    return stratified_split(train.images, eval_fraction, seed)


def majority_fraction(entries: tuple[ImageEntry, ...], task: ClassTask) -> float | None:
    """Share of the evaluation split in its most common class; None for multilabel or
    an empty split."""
    if task != "classification" or not entries:
        return None
    counts = Counter(entry.labels[0] for entry in entries)
    return round(max(counts.values()) / len(entries), 6)


def pixel_samples(
    split: tuple[tuple[ImageEntry, ...], tuple[ImageEntry, ...]], task: ClassTask
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The (URI, class) pairs the pixel reference fits and scores (single-label
    classification only; capped, tailor_trainer.pixels)."""
    if task != "classification":
        return [], []

    def pairs(entries: tuple[ImageEntry, ...], limit: int) -> list[tuple[str, int]]:
        by_id = {e.id: e for e in entries if e.labels}
        chosen = sample_ids(list(by_id), limit)
        return [(by_id[i].uri, by_id[i].labels[0]) for i in chosen]

    return pairs(split[0], MAX_TRAIN_IMAGES), pairs(split[1], MAX_EVAL_IMAGES)


def check_declared_sizes(
    entries: tuple[ImageEntry, ...], sizes: dict[str, tuple[int, int]], problems: Problems
) -> None:
    """Detection boxes are in the declared size's pixels: it must be the image's own
    (with its EXIF orientation applied, as training sees it)."""
    for entry in entries:
        found = sizes.get(entry.uri)
        if found is not None and found != (entry.width, entry.height):
            problems.error(
                "image_size_mismatch",
                f"image {entry.id} ({entry.uri}) is declared {entry.width}x{entry.height} "
                f"but is {found[0]}x{found[1]} (EXIF orientation applied)",
            )


def verify_catalog(
    storage: Storage, catalog: tuple[PretrainedBackbone, ...]
) -> tuple[list[str], dict[str, str]]:
    """(verified names, {name: why unusable}). Never raises: a bad catalog entry is the
    platform team's to fix, and never fails a dataset's validation."""
    if not catalog:
        return [], {}
    # torch and timm only when there is a catalog: a dataset check stays light.
    from tailor_trainer.pretrained import verify_backbone

    verified: list[str] = []
    unusable: dict[str, str] = {}
    for backbone in catalog:
        try:
            verify_backbone(storage, backbone)
        except ConfigError as error:
            unusable[backbone.name] = str(error)
        except ObjectNotFound as error:  # verify_backbone names these; for safety
            unusable[backbone.name] = f"weights not found: {error}"
        except StorageError as error:
            unusable[backbone.name] = (
                f"weights could not be read ({error}); a storage error that may pass: the "
                f"next validation checks again"
            )
        except Exception as error:  # a broken entry must not end the dataset's validation
            unusable[backbone.name] = f"unexpected {type(error).__name__}: {error}"
        else:
            verified.append(backbone.name)
            continue
        # The termination message holds 4096 bytes for everything: keep each reason short.
        reason = unusable[backbone.name]
        if len(reason) > MAX_REASON:
            unusable[backbone.name] = reason[: MAX_REASON - 3] + "..."
        log.warning("backbone %s is unusable: %s", backbone.name, unusable[backbone.name])
    return verified, unusable


def _output_refused(error: OutputTaken) -> ValidationReport:
    result = AttemptResult(
        exit=ExitCode.INVALID_CONFIG.name,
        reason=f"invalid configuration: {error}",
        stopped_by="config",
    )
    return ValidationReport(ExitCode.INVALID_CONFIG, result, [], {})


def validate(storage: Storage, options: ValidateOptions) -> ValidationReport:
    wrong = config_problems(storage, options.candidate_models, options.given_trials)
    if wrong:
        reason = "invalid configuration: " + "; ".join(wrong)
        result = AttemptResult(
            exit=ExitCode.INVALID_CONFIG.name, reason=reason, problems=wrong, stopped_by="config"
        )
        return ValidationReport(ExitCode.INVALID_CONFIG, result, [], {})
    """The dataset's checks; with a claim, the output prefix first (refused before any
    image is read) and, once everything passed, claimed for the job."""
    if options.claim is not None:
        try:
            ownership.check(storage, options.claim.output, options.claim.uid)
        except OutputTaken as error:
            return _output_refused(error)
    report = _validate_dataset(storage, options)
    if options.claim is not None and report.code == ExitCode.SUCCESS:
        claim = options.claim
        try:
            ownership.claim(storage, claim.output, claim.job, claim.uid)
        except OutputTaken as error:
            return _output_refused(error)
    return report


def _validate_dataset(storage: Storage, options: ValidateOptions) -> ValidationReport:
    problems = Problems()
    try:
        train, evaluation = parse_dataset(
            storage,
            options.annotations,
            options.evaluation,
            options.task,
            problems,
            options.min_images_per_class,
        )
    except DatasetNotFound as error:
        result = AttemptResult(
            exit=ExitCode.DATASET_NOT_FOUND.name, reason=error.reason, stopped_by="dataset"
        )
        return ValidationReport(ExitCode.DATASET_NOT_FOUND, result, [], {})
    facts = None
    if train is not None:
        entries = train.images + (evaluation.images if evaluation else ())
        split = selection_split(train, evaluation, options.eval_fraction, options.seed)
        fit, scored = pixel_samples(split, options.task)
        stats = check_images(
            storage,
            (e.uri for e in entries),
            problems,
            options.workers,
            thumbnails_of=frozenset(uri for uri, _ in fit + scored),
        )
        if options.task == "detection":
            check_declared_sizes(entries, stats.sizes, problems)
        counts = class_counts(train.images)
        pixels = stats.pixel_mean_std()
        pixels_scored = (
            pixel_reference(fit, scored, stats.thumbnails, len(train.categories))
            if problems.ok
            else None
        )
        facts = DatasetFacts(
            images=len(train.images),
            classes=len(train.categories),
            mean_width=round(stats.mean_width, 2),
            mean_height=round(stats.mean_height, 2),
            digest=digest_of(train, evaluation),
            eval_images=len(evaluation.images) if evaluation else None,
            annotations=train.annotations + (evaluation.annotations if evaluation else 0),
            min_class_images=min((counts[i] for i in range(len(train.categories))), default=0),
            pixel_mean=pixels[0] if pixels else None,
            pixel_std=pixels[1] if pixels else None,
            decoded_images=stats.decoded,
            majority_fraction=majority_fraction(split[1], options.task),
            pixel_reference=pixels_scored.accuracy if pixels_scored else None,
            mirrored_pixel_reference=pixels_scored.mirrored if pixels_scored else None,
        )
    # Only what is verified can be fine-tuned: the search prices exactly those.
    verified, unusable = verify_catalog(storage, options.catalog)
    usable = tuple(b for b in options.catalog if b.name in verified)
    estimate = None
    if facts and options.given_trials:
        # Listed trials run as given: price what will run, never a search.
        estimate = minimum_given_trials_gpu_seconds(
            facts, options.given_trials, options.cost, options.task
        )
    elif facts:
        estimate = estimate_min_gpu_seconds(
            facts, options.input_size, options.model, options.cost, usable, options.task
        )
    code, reason, stopped_by = ExitCode.SUCCESS, "dataset valid", None
    if not problems.ok:
        code, reason, stopped_by = (
            ExitCode.DATASET_CORRUPT,
            f"dataset corrupt: {problems.summary()}",
            "dataset",
        )
    elif (
        options.budget_gpu_seconds is not None
        and estimate is not None
        and options.budget_gpu_seconds < estimate
    ):
        code, stopped_by = ExitCode.BUDGET_NOT_ENOUGH, "budget"
        reason = (
            f"budget of {options.budget_gpu_seconds:g} GPU-seconds is below the estimated "
            f"minimum of {estimate:g} GPU-seconds for this dataset"
            + (
                f" (the {len(options.given_trials)} listed trials as they will run: their "
                "epochs or max_steps, at most a useful training each)"
                if options.given_trials
                else ""
            )
        )
    result = AttemptResult(
        exit=code.name,
        reason=reason,
        dataset=facts,
        estimated_min_gpu_seconds=estimate,
        problems=problems.error_examples[: options.max_problems],
        problem_counts=dict(problems.errors),
        stopped_by=stopped_by,
        verified_backbones=verified,
        unusable_backbones=unusable,
    )
    return ValidationReport(
        code, result, problems.warning_examples[: options.max_problems], dict(problems.warnings)
    )
