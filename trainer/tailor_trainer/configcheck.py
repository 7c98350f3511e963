"""The job's own configuration, checked on a CPU before any GPU: every model the spec
names exists in timm, and every pretrained weights URI it lists can be read.

Each problem names the spec field, so the user knows what to change; the validation
attempt then ends with the contract's INVALID_CONFIG, which is never retried."""

from collections.abc import Sequence

from tailor_contract import GivenTrial
from tailor_trainer.storage import Storage


def _unknown_model(name: str) -> bool:
    import timm  # only when the spec names models: a dataset check stays light

    return not timm.is_model(name)


def config_problems(
    storage: Storage, candidates: Sequence[str], given: Sequence[GivenTrial]
) -> list[str]:
    """What is wrong with spec.search.models and spec.search.trials, field by field."""
    problems: list[str] = []
    for index, name in enumerate(candidates):
        if _unknown_model(name):
            problems.append(f"spec.search.models[{index}]: timm has no model named {name!r}")
    for index, trial in enumerate(given):
        where = f"spec.search.trials[{index}]"
        if _unknown_model(trial.model):
            problems.append(f"{where}.model: timm has no model named {trial.model!r}")
        # exists() counts a refused read (401/403) as missing: the job's credentials
        # cannot read it, which is the user's to fix; other storage errors propagate.
        if trial.pretrained and not storage.exists(trial.pretrained):
            problems.append(f"{where}.pretrained: no weights at {trial.pretrained}")
    return problems
