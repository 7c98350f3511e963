"""The AutoML planner: base-model selection and hyperparameter search by asynchronous
successive halving, in calibrated GPU-seconds, behind the TrialPlanner interface."""

from collections.abc import Sequence

from tailor_contract import PretrainedBackbone
from tailor_contract.cost import (
    REFERENCE,
    CostModel,
    catalog_backbone,
    cheapest_backbone,
    minimum_catalog_search_gpu_seconds,
    minimum_search_gpu_seconds,
)
from tailor_operator.core.planner import PlannerDecision, PlannerView, SimplePlanner
from tailor_operator.core.search.decide import SearchRound
from tailor_operator.core.search.space import allowed_catalog
from tailor_operator.core.search.stopping import MIN_DELTA
from tailor_operator.core.spec import TrainingJobSpec
from tailor_operator.core.status import DatasetSummary


class AutoMLPlanner:
    """Searches unless spec.search.trials names the trials, which then run as given."""

    def __init__(self, cost: CostModel = REFERENCE, min_delta: float = MIN_DELTA) -> None:
        self.cost = cost
        self.min_delta = min_delta
        self._given = SimplePlanner()

    def first_model(
        self,
        spec: TrainingJobSpec,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> str:
        """The cheapest backbone the search may use: validation prices the cheapest
        useful search with it (tailor_contract.cost, on both sides)."""
        if spec.search.trials:
            return self._given.first_model(spec, default_model)
        entries = allowed_catalog(catalog, spec.search.models)
        if entries:
            cheapest = min(entries, key=lambda e: catalog_backbone(e, spec.task).relative_cost)
            return cheapest.architecture
        return cheapest_backbone(spec.search.models, spec.task).name

    def minimum_gpu_seconds(
        self,
        spec: TrainingJobSpec,
        dataset: DatasetSummary,
        default_model: str,
        catalog: Sequence[PretrainedBackbone] = (),
    ) -> float | None:
        """What the search would really run first: with catalogued backbones, one
        linear probe (detection: one short fine-tuning); without, a few short trainings
        from scratch."""
        if spec.search.trials:
            return None
        facts, task = dataset.facts(), spec.task
        entries = allowed_catalog(catalog, spec.search.models)
        if entries:
            return minimum_catalog_search_gpu_seconds(facts, entries, self.cost, task)
        model = self.first_model(spec, default_model)
        return minimum_search_gpu_seconds(facts, model, cost=self.cost, task=task)

    def decide(self, view: PlannerView) -> PlannerDecision:
        if view.spec.search.trials or view.dataset is None:
            # Given trials, or a validation that reported no facts to size a search by.
            return self._given.decide(view)
        return SearchRound(view, self.cost, self.min_delta).decide()
