"""Planners by name, for the operator's settings (TAILOR_PLANNER)."""

from tailor_contract.cost import REFERENCE, CostModel
from tailor_operator.core.planner import SimplePlanner, TrialPlanner
from tailor_operator.core.search import AutoMLPlanner

PLANNERS = ("automl", "simple")


def planner_named(name: str, cost: CostModel = REFERENCE) -> TrialPlanner:
    """automl: the search (the default), pricing at `cost`; simple: the given trials,
    one per model, or one."""
    if name == "automl":
        return AutoMLPlanner(cost)
    if name == "simple":
        return SimplePlanner()
    raise ValueError(f"unknown planner {name!r}: expected one of {', '.join(PLANNERS)}")
