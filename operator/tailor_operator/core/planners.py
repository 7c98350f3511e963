"""Planners by name, for the operator's settings (TAILOR_PLANNER)."""

from tailor_operator.core.planner import SimplePlanner, TrialPlanner
from tailor_operator.core.search import AutoMLPlanner

PLANNERS = ("automl", "simple")


def planner_named(name: str) -> TrialPlanner:
    """automl: the search (the default); simple: the given trials, one per model, or one."""
    if name == "automl":
        return AutoMLPlanner()
    if name == "simple":
        return SimplePlanner()
    raise ValueError(f"unknown planner {name!r}: expected one of {', '.join(PLANNERS)}")
