"""`tailor-train validate`: check a dataset on the CPU before any GPU is spent on it."""

from dataclasses import dataclass
from typing import Any

from tailor_contract import AttemptResult, DatasetFacts, ExitCode
from tailor_contract.cost import REFERENCE, CostModel
from tailor_trainer.coco import ClassTask
from tailor_trainer.datasets import class_counts, digest_of, parse_dataset
from tailor_trainer.errors import DatasetNotFound
from tailor_trainer.estimate import estimate_min_gpu_seconds
from tailor_trainer.imagecheck import check_images
from tailor_trainer.problems import Problems
from tailor_trainer.storage import Storage


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


def validate(storage: Storage, options: ValidateOptions) -> ValidationReport:
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
        stats = check_images(storage, (e.uri for e in entries), problems, options.workers)
        counts = class_counts(train.images)
        pixels = stats.pixel_mean_std()
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
        )
    estimate = (
        estimate_min_gpu_seconds(facts, options.input_size, options.model, options.cost)
        if facts
        else None
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
        )
    result = AttemptResult(
        exit=code.name,
        reason=reason,
        dataset=facts,
        estimated_min_gpu_seconds=estimate,
        problems=problems.error_examples[: options.max_problems],
        problem_counts=dict(problems.errors),
        stopped_by=stopped_by,
    )
    return ValidationReport(
        code, result, problems.warning_examples[: options.max_problems], dict(problems.warnings)
    )
