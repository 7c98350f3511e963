"""What the CRD schema cannot check about a spec, checked before any pod runs."""

from collections.abc import Mapping

from pydantic import ValidationError

from tailor_contract import PRIMARY_METRIC, Hyperparameters, metric_problem
from tailor_contract.metrics import direction
from tailor_operator.core.spec import Scalar, TrainingJobSpec


def hyperparameter_problem(values: Mapping[str, Scalar], where: str) -> str | None:
    """'<where>.hyperparameters.lr: ...' for the first value the trainer would refuse."""
    try:
        Hyperparameters.model_validate(dict(values))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        return f"{where}.hyperparameters.{key}: {first['msg']}"
    return None


def metric_spec_problem(spec: TrainingJobSpec) -> str | None:
    """The task must be one the trainer runs, the primary metric one it reports for that
    task, and a stated goal the metric's own direction (tailor_contract.metrics)."""
    search = spec.search
    problem = metric_problem(spec.task, None)
    if problem is not None:
        return f"spec.task: {problem}"
    problem = metric_problem(spec.task, search.primary_metric)
    if problem is not None:
        return f"spec.search.primaryMetric: {problem}"
    metric = search.primary_metric or PRIMARY_METRIC[spec.task]
    wanted = direction(spec.task, metric)
    if search.goal is not None and search.goal != wanted:
        return (
            f"spec.search.goal: {search.goal} contradicts {metric}, which is "
            f"{'maximised' if wanted == 'Maximize' else 'minimised'}; leave goal out"
        )
    return None


def spec_problem(spec: TrainingJobSpec) -> str | None:
    """A message naming the first bad field, or None when the spec can run."""
    problem = metric_spec_problem(spec)
    if problem is not None:
        return problem
    try:
        limit = spec.budget.limit_gpu_seconds
    except ValueError as error:
        return str(error)
    if limit <= 0:
        return f"spec.budget.gpuHours must be positive, got {spec.budget.gpu_hours}"
    for index, trial in enumerate(spec.search.trials):
        where = f"spec.search.trials[{index}]"
        if trial.gpus is not None and trial.gpus > spec.resources.max_gpus_per_trial:
            return (
                f"{where}.gpus: {trial.gpus} is more than spec.resources.maxGpusPerTrial "
                f"({spec.resources.max_gpus_per_trial})"
            )
        problem = hyperparameter_problem(trial.hyperparameters, where)
        if problem is not None:
            return problem
    return None
