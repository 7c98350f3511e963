"""What an export's evaluation report is told about the search: each trial as it stands
when the exporting attempt starts (its model, recipe, metric, charges, promotions)."""

from collections.abc import Sequence

from tailor_contract import SearchTrial
from tailor_operator.core.status import Billing, TrialStatus


def _ended(trial: TrialStatus) -> str:
    if trial.outcome is not None:
        return f"{trial.outcome.value}: {trial.message}".rstrip(": ")
    return trial.message


def search_trials(trials: Sequence[TrialStatus]) -> list[SearchTrial]:
    found = []
    for trial in trials:
        charged = sum(1 for r in trial.attempts if r.billing == Billing.CHARGED)
        recipe = trial.hyperparameters.get("recipe", "train")
        metric = trial.metrics.get(trial.primary_metric or "") if trial.primary_metric else None
        found.append(
            SearchTrial(
                name=trial.name,
                model=trial.backbone or trial.model,
                recipe=recipe if isinstance(recipe, str) else "train",
                state=trial.state.value,
                metric=metric,
                charged_gpu_seconds=trial.charged_gpu_seconds,
                attempts=len(trial.attempts),
                promotions=max(0, charged - 1),
                ended=_ended(trial)[:200],
            )
        )
    return found
