"""The attempt's result: a summary in the termination message, the full document beside
the checkpoints, and the run's resolved config so it can be reproduced."""

import json
import logging
import platform
from typing import TYPE_CHECKING, Any

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer.allowance import Allowance
from tailor_trainer.storage import Storage, StorageError, join
from tailor_trainer.termination import write_termination_message
from tailor_trainer.trial import Trial

if TYPE_CHECKING:
    from tailor_trainer.exporter import Exported

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    import onnx
    import timm
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnx": onnx.__version__,
        "cuda": str(torch.version.cuda),
    }


def resolved_config(trial: Trial) -> dict[str, Any]:
    return {
        "trial": trial.config.model_dump(mode="json"),
        "hyperparameters": trial.hp.model_dump(mode="json"),
        "data": {
            "size": trial.data_config.size,
            "mean": trial.data_config.mean,
            "std": trial.data_config.std,
            "interpolation": trial.data_config.interpolation,
            "crop_pct": trial.data_config.crop_pct,
        },
        "steps": {"total": trial.total_steps, "per_epoch": trial.per_epoch},
        "batch": {"per_process": trial.sampler.batch_size, "processes": trial.world.size},
        "seeds": {"trial": trial.config.seed, "sampler": trial.config.seed},
        "classes": trial.dataset.class_names,
        "dataset": {
            "digest": trial.dataset.digest,
            "train_images": len(trial.dataset.train),
            "eval_images": len(trial.dataset.evaluation),
            "annotations": trial.dataset.annotations,
        },
        "evaluation_is_split": trial.dataset.evaluation_is_split,
        "primary_metric": trial.primary_metric,
    }


def finish(
    trial: Trial | None,
    config_output: str,
    attempt: int,
    storage: Storage,
    allowance: Allowance,
    code: ExitCode,
    stopped_by: str,
    reason: str,
    *,
    problems: list[str] | None = None,
    checkpoint_uri: str | None = None,
    exported: "Exported | None" = None,
) -> AttemptResult:
    """Build the result, store the full document (best effort), write the message."""
    books = trial.books if trial else None
    result = AttemptResult(
        exit=code.name,
        reason=reason,
        # The metrics of the weights the export holds (the best checkpoint), not of the
        # last evaluation: the search ranks, and the job reports, what is delivered.
        metrics=(books.best_metrics or books.metrics) if books else {},
        steps=books.step if books else 0,
        images_seen=books.images_seen if books else 0,
        epochs=round(books.step / trial.per_epoch, 4) if trial and books else 0.0,
        wall_seconds=round(allowance.wall_seconds(), 3),
        gpu_seconds=round(allowance.used(), 3),
        problems=problems or [],
        stopped_by=stopped_by,
        primary_metric=trial.primary_metric if trial else None,
        resumed_from_step=books.resumed_from if books else None,
        checkpoint_uri=checkpoint_uri,
        export_uri=exported.uri if exported else None,
        export_digest=exported.digest if exported else None,
    )
    uri = join(config_output, "results", f"attempt-{attempt}.json")
    document: dict[str, Any] = {"result": result.model_dump(mode="json")}
    if trial is not None and books is not None:
        document.update(
            config=resolved_config(trial),
            confusion_matrix=books.confusion_matrix,
            best={
                "metric": trial.primary_metric,
                "value": books.best_value,
                "step": books.best_step,
                "metrics": books.best_metrics,
            },
            last_evaluation={"step": books.evaluated_at, "metrics": books.metrics},
            trial_gpu_seconds=round(books.gpu_seconds_before + allowance.used(), 3),
            versions=versions(),
        )
    try:
        storage.write(uri, json.dumps(document, indent=2).encode())
        storage.write(join(config_output, "result.json"), json.dumps(document, indent=2).encode())
        result = result.model_copy(update={"result_uri": uri})
    except StorageError as error:
        # The termination message still reaches the operator; the document is a bonus.
        log.warning("cannot store the result document at %s: %s", uri, error)
    write_termination_message(result)
    log.info("attempt ends: %s (%s) %s", code.name, stopped_by, reason)
    return result


def write_resolved_config(trial: Trial) -> None:
    uri = join(trial.config.output, "config.json")
    trial.storage.write(uri, json.dumps(resolved_config(trial), indent=2).encode())
