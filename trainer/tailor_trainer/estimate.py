"""The feasibility estimate validation checks the budget against: the calibrated
GPU-seconds of the cheapest useful search.

The arithmetic lives in tailor_contract.cost, shared with the operator's search, so the
trainer's verdict (exit 67) and the operator's sizing of the search can never disagree.
"""

from collections.abc import Sequence

from tailor_contract import DatasetFacts, PretrainedBackbone
from tailor_contract.backbones import Task
from tailor_contract.cost import (
    REFERENCE,
    CostModel,
    minimum_catalog_search_gpu_seconds,
    minimum_search_gpu_seconds,
)

__all__ = ["CostModel", "estimate_min_gpu_seconds"]


def estimate_min_gpu_seconds(
    facts: DatasetFacts,
    input_side: int | None = None,
    model: str | None = None,
    cost: CostModel = REFERENCE,
    catalog: Sequence[PretrainedBackbone] = (),
    task: Task = "classification",
) -> float:
    """input_side None: the side the search derives from the images; model None: the
    cheapest backbone of the task's ladder (the operator names the cheapest it allows).
    With catalogued backbones the search starts with a linear probe (classification)
    or a short fine-tuning (detection): that is the floor."""
    if catalog:
        return minimum_catalog_search_gpu_seconds(facts, catalog, cost, task)
    return minimum_search_gpu_seconds(facts, model, input_side, cost, task)
