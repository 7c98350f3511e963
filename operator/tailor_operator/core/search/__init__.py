"""The AutoML search: space, cost model, rungs, ASHA and early stopping (pure)."""

from tailor_operator.core.search.planner import AutoMLPlanner

__all__ = ["AutoMLPlanner"]
