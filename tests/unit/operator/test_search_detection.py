"""The AutoML search for detection: its ladder of whole detectors, sides from the images,
knobs, no probe, pricing shared with the trainer's validation, and the warning when a
detector would train from scratch on few images. Pure: no I/O."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_contract import (
    DatasetFacts,
    GivenTrial,
    Hyperparameters,
    PretrainedBackbone,
)
from tailor_contract.cost import (
    REFERENCE,
    catalog_backbone,
    epoch_gpu_seconds,
    find_backbone,
    minimum_catalog_search_gpu_seconds,
    minimum_given_trials_gpu_seconds,
    minimum_search_gpu_seconds,
)
from tailor_contract.detection_cost import detection_default_side, detection_sides
from tailor_contract.ladders import (
    DETECTION_BACKBONES,
    DETECTION_NECK_GMACS,
    DETECTION_TEST_BACKBONES,
    measured,
)
from tailor_operator.core.catalog import SCRATCH_REASON, pretrained_situation
from tailor_operator.core.planner import PlannerView
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.knobs import DETECTION, TRAIN
from tailor_operator.core.search.references import reference_floor
from tailor_operator.core.search.space import build_space
from tailor_operator.core.status import (
    BudgetStatus,
    DatasetSummary,
    JobPhase,
    StopReason,
    TrainingJobStatus,
    ValidationStatus,
)
from tailor_trainer.estimate import estimate_min_gpu_seconds
from tests.unit.operator.factories import job
from tests.unit.operator.search_world import Behaviour, SearchWorld
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_plan_flow import validated

# A catalogued ImageNet backbone a platform team imported for detection too.
LITE0 = PretrainedBackbone(
    name="efficientnet-lite0",
    architecture="efficientnet_lite0",
    weights="s3://models/catalog/efficientnet-lite0.safetensors",
    digest="sha256:" + "a" * 64,
    input_size=224,
    gmacs=0.39,
    tasks=("classification", "detection"),
)
RESNET = LITE0.model_copy(update={"name": "resnet50-a1", "architecture": "resnet50", "gmacs": 4.1})


def facts(
    images: int, width: float = 1024, height: float = 768, eval_images: int | None = None
) -> DatasetFacts:
    return DatasetFacts(
        images=images,
        classes=5,
        mean_width=width,
        mean_height=height,
        digest="d",
        eval_images=eval_images,
    )


def view(summary: DatasetFacts, seconds: float, catalog=(), trials=(), **spec) -> PlannerView:
    return PlannerView(
        spec=job(task="detection", **spec).spec,
        dataset=DatasetSummary.of(summary),
        trials=list(trials),
        budget=BudgetStatus(limit_gpu_seconds=seconds),
        default_model="resnet50",
        seed=5,
        catalog=catalog,
    )


def test_the_ladder_is_of_whole_detectors_cheapest_first_test_models_apart():
    names = [b.name for b in DETECTION_BACKBONES]
    assert names == ["efficientnet_b0", "resnet18", "convnext_nano", "resnet50", "convnext_tiny"]
    assert not {b.name for b in DETECTION_TEST_BACKBONES} & set(names)
    # A detector costs more than its classifier: the neck and head come on top.
    for backbone in DETECTION_BACKBONES:
        classifier = measured(backbone.name)
        assert classifier is None or backbone.gmacs > classifier.gmacs


@pytest.mark.parametrize("model", ["efficientnet_b0", "resnet18", "resnet50", "convnext_tiny"])
def test_a_detection_image_costs_6_to_35_times_a_classification_image(model):
    """At each task's default side: 512 px letterboxed against 224 px."""
    data = facts(10_000)
    detection = epoch_gpu_seconds(data, find_backbone(model, "detection"), 512, task="detection")
    classification = epoch_gpu_seconds(data, find_backbone(model), 224)
    assert 5 <= detection / classification <= 35


@pytest.mark.parametrize(
    ("width", "height", "default", "sides"),
    [
        (4000, 3000, 512, (384, 512, 640, 768, 896, 1024)),
        (640, 480, 512, (384, 512, 640)),
        (400, 300, 512, (384, 512)),
        (96, 80, 96, (96, 128, 160, 192)),  # small images: their own size, up to twice
        (300, 200, 320, (320, 352, 384)),
        (20, 20, 64, (64, 96, 128)),
        (0, 0, 512, (384, 512)),  # no size known: the trainer's default
    ],
)
def test_sides_follow_the_longer_side_of_the_images(width, height, default, sides):
    data = facts(100, width, height)
    assert detection_default_side(data) == default
    assert detection_sides(data) == sides
    assert default in sides


def test_the_space_searches_detection_knobs_without_a_probe():
    space = build_space(facts(5_000, 1024, 768), task="detection")
    assert not space.probing
    assert set(space.batch_sizes) <= {8, 16, 32}
    # 4000 training images: the larger detectors wait for more data.
    assert [b.name for b in space.preferred] == ["efficientnet_b0", "resnet18"]
    rng = random.Random(0)
    configs = [space.default()] + [space.sample(rng) for _ in range(200)]
    for config in configs:
        assert config.recipe == TRAIN
        assert DETECTION.lr_range[0] <= config.lr <= DETECTION.lr_range[1]
        assert 384 <= config.input_size <= 1024
        assert config.input_size % 128 == 0
        # The trainer accepts every configuration the search writes.
        Hyperparameters.model_validate(config.hyperparameters(3.0))
    assert {c.input_size for c in configs} == set(space.sides)
    assert {c.batch_size for c in configs} == set(space.batch_sizes)


def test_a_catalogued_backbone_is_fine_tuned_directly_with_a_backbone_multiplier():
    space = build_space(facts(500, 1024, 768), catalog=(RESNET, LITE0), task="detection")
    assert [e.name for e in space.catalog] == ["efficientnet-lite0", "resnet50-a1"]
    assert not space.probing
    assert not space.scratch
    default = space.default()
    assert (default.backbone, default.recipe, default.input_size) == (
        "efficientnet-lite0",
        TRAIN,
        512,  # the detection side, not the 224 px the backbone was pretrained at
    )
    assert default.backbone_lr_scale < 1.0
    rng = random.Random(1)
    samples = [space.sample(rng) for _ in range(100)]
    assert all(s.pretrained and s.recipe == TRAIN for s in samples)
    scales = {s.backbone_lr_scale for s in samples}
    assert len(scales) > 10
    assert all(DETECTION.backbone_lr_scale_range[0] <= s <= 1.0 for s in scales)
    assert {s.input_size for s in samples} <= set(space.sides)
    assert all(
        DETECTION.finetune_lr_range[0] <= s.lr <= DETECTION.finetune_lr_range[1] for s in samples
    )


def test_a_large_evaluation_split_is_evaluated_less_often_and_priced_so():
    even = facts(1_000, eval_images=500)
    heavy = facts(1_000, eval_images=3_000)
    assert build_space(even, task="detection").eval_every == 1.0
    space = build_space(heavy, task="detection")
    assert space.eval_every == 6.0
    assert space.default().hyperparameters(10.0)["eval_every_epochs"] == 6.0
    # Classification keeps its evaluation each epoch.
    assert "eval_every_epochs" not in build_space(heavy).default().hyperparameters(10.0)
    model = find_backbone("resnet18", "detection")
    priced = epoch_gpu_seconds(heavy, model, 512, task="detection")
    train_only = epoch_gpu_seconds(facts(1_000, eval_images=0), model, 512, task="detection")
    # Six evaluation images per training image, one pass every six epochs.
    assert train_only < priced < 2 * train_only


sizes = st.integers(1, 500_000)
lengths = st.floats(8, 5000)


@settings(max_examples=100, deadline=None)
@given(images=sizes, width=lengths, height=lengths, catalogued=st.booleans())
def test_trainer_and_operator_compute_the_same_detection_minimum(images, width, height, catalogued):
    """One cost model: validation's refusal and the operator's BudgetNotEnough agree."""
    reported = facts(images, width, height, eval_images=max(1, images // 5))
    spec = job(task="detection").spec
    planner = AutoMLPlanner()
    catalog = (RESNET, LITE0) if catalogued else ()
    model = planner.first_model(spec, "resnet50", catalog)
    operator = planner.minimum_gpu_seconds(spec, DatasetSummary.of(reported), "resnet50", catalog)
    trainer = estimate_min_gpu_seconds(reported, None, model, REFERENCE, catalog, "detection")
    assert operator == trainer
    assert model == ("efficientnet_lite0" if catalogued else "efficientnet_b0")
    # Detection is never cheaper than classifying the same images.
    assert trainer >= estimate_min_gpu_seconds(reported, None, None, REFERENCE, catalog)


def test_the_detection_minimum_prices_what_the_search_runs_first():
    data = facts(2_000)
    scratch = minimum_search_gpu_seconds(data, task="detection")
    tuned = minimum_catalog_search_gpu_seconds(data, (LITE0,), task="detection")
    # With a catalog: one short fine-tuning (no probe), cheaper than three from scratch.
    assert 0 < tuned < scratch
    listed = [GivenTrial(model="resnet50"), GivenTrial(model="resnet50", input_size=1024)]
    # A listed detection trial without input_size trains at the trainer's 512 px.
    one = minimum_given_trials_gpu_seconds(data, listed[:1], task="detection")
    assert minimum_given_trials_gpu_seconds(data, listed, task="detection") > 2 * one
    assert one > minimum_given_trials_gpu_seconds(data, listed[:1])


def test_the_search_plans_detection_trials_within_the_budget():
    data = facts(3_000, 1024, 768)
    minimum = minimum_search_gpu_seconds(data, task="detection")
    decision = AutoMLPlanner().decide(view(data, 20 * minimum, resources={"maxParallelTrials": 4}))
    trials = decision.new_trials
    assert len(trials) == 4
    assert sum(t.allowance_gpu_seconds for t in trials) <= 20 * minimum
    ladder = {b.name for b in DETECTION_BACKBONES}
    for trial in trials:
        assert trial.model in ladder
        assert trial.backbone is None
        hyperparameters = Hyperparameters.model_validate(trial.hyperparameters)
        assert hyperparameters.recipe == "train"
        assert hyperparameters.input_size in (384, 512, 640, 768, 896, 1024)
        assert hyperparameters.epochs >= 2  # at least the shortest useful training


def test_with_a_catalog_the_detection_search_fine_tunes_first_and_never_probes():
    data = facts(400, 640, 480)
    minimum = minimum_catalog_search_gpu_seconds(data, (LITE0,), task="detection")
    decision = AutoMLPlanner().decide(
        view(data, 10 * minimum, catalog=(LITE0,), resources={"maxParallelTrials": 2})
    )
    first, _second = decision.new_trials
    assert (first.name, first.backbone, first.model) == (
        "t0",
        "efficientnet-lite0",
        LITE0.architecture,
    )
    assert all(t.hyperparameters.get("recipe", TRAIN) == TRAIN for t in decision.new_trials)
    assert Hyperparameters.model_validate(first.hyperparameters).backbone_lr_scale < 1.0


def test_a_budget_for_less_than_one_fine_tuning_still_runs_it_once():
    """Below a bracket, the search spends what there is on its default: the minimum is
    one useful fine-tuning, and a budget at it starts exactly that."""
    data = facts(400, 640, 480)
    minimum = minimum_catalog_search_gpu_seconds(data, (LITE0,), task="detection")
    decision = AutoMLPlanner().decide(view(data, minimum, catalog=(LITE0,)))
    (only,) = decision.new_trials
    assert only.backbone == "efficientnet-lite0"
    assert only.allowance_gpu_seconds <= minimum


@pytest.mark.parametrize(
    ("images", "verified", "expected"),
    [
        (1_000, [], (False, SCRATCH_REASON)),  # 800 training images after the split
        (1_200, [], (False, SCRATCH_REASON)),  # 960
        (1_250, [], (False, "NoCatalog")),  # 1000
        (1_000, [LITE0], (True, "Catalog")),
    ],
)
def test_a_detector_from_scratch_on_few_images_is_warned_about(images, verified, expected):
    status = TrainingJobStatus(
        validation=ValidationStatus(
            state="Succeeded",
            # One class: hundreds of images per class, which classification calls enough.
            dataset=DatasetSummary(images=images, classes=1),
            backbones=verified,
        )
    )
    found = pretrained_situation(status, "detection")
    assert found is not None
    assert found[:2] == expected
    if expected[1] == SCRATCH_REASON:
        assert f"a detector on {images * 4 // 5} training images" in found[2]
        classified = pretrained_situation(status)
        assert classified is not None
        assert classified[1] == "NoCatalog"


def test_a_detection_job_below_the_detection_minimum_fails_before_any_gpu():
    """Enough for classifying the images, not for detecting in them: BudgetNotEnough,
    with the detection estimate, and the validation pod priced detection too."""
    data = facts(5_000, 1024, 768)
    minimum = minimum_search_gpu_seconds(data, task="detection")
    assert estimate_min_gpu_seconds(data) < 0.9 * minimum
    sim = Sim(
        planner=AutoMLPlanner(),
        task="detection",
        budget={"gpuHours": f"{0.9 * minimum / 3600:.4f}"},
    )
    sim.step(0)
    (name,) = sim.pod_names("validate")
    config = sim.config(name)
    assert (config["task"], config["model"]) == ("detection", "efficientnet_b0")
    validated(sim, facts=data)
    status = sim.status
    assert (status.phase, status.reason) == (JobPhase.FAILED, "BudgetNotEnough")
    assert status.validation.estimated_min_gpu_seconds == minimum
    assert "a few short trials of efficientnet_b0" in status.message
    assert sim.pod_names("t0") == []


def test_a_detection_job_with_only_data_and_a_budget_starts_a_search():
    data = facts(500, 1024, 768)
    hours = f"{10 * minimum_search_gpu_seconds(data, task='detection') / 3600:.4f}"
    sim = Sim(
        planner=AutoMLPlanner(),
        task="detection",
        budget={"gpuHours": hours},
        resources={"maxParallelTrials": 2},
    )
    validated(sim, facts=data)
    assert sim.status.phase == JobPhase.TRAINING
    configs = [sim.config(n) for t in ("t0", "t1") for n in sim.pod_names(t)]
    assert len(configs) == 2
    for config in configs:
        assert config["task"] == "detection"
        assert config["model"] in {b.name for b in DETECTION_BACKBONES}
        assert config["hyperparameters"]["input_size"] in (384, 512, 640, 768, 896, 1024)
    # Few images for a detector and no catalog: the job says so, once.
    (warning,) = [e for e in sim.events if e[:2] == ("Warning", SCRATCH_REASON)]
    assert "a detector on 400 training images" in warning[2]
    pretrained = next(c for c in sim.status.conditions if c.type == "Pretrained")
    assert (pretrained.status, pretrained.reason) == ("False", SCRATCH_REASON)


def test_a_catalogued_backbone_is_priced_as_the_whole_detector():
    """Measured when the table has its architecture (the catalog's wheel sources), else
    its own GMACs plus the largest neck and head: never as the bare classifier."""
    wheel = LITE0.model_copy(update={"architecture": "tf_efficientnet_lite0"})
    assert catalog_backbone(wheel, "detection").gmacs == 1.465
    unknown = LITE0.model_copy(update={"architecture": "regnety_016", "gmacs": 1.6})
    priced = catalog_backbone(unknown, "detection")
    assert priced.gmacs == pytest.approx(1.6 + DETECTION_NECK_GMACS)
    assert priced.gmacs > catalog_backbone(unknown).gmacs


@settings(max_examples=15, deadline=None)
@given(
    budget=st.sampled_from([0.5, 1.2, 4.0, 20.0]),  # times the detection minimum
    images=st.sampled_from([300, 3_000, 40_000]),
    behaviour=st.builds(
        Behaviour,
        overhead_ratio=st.floats(0.3, 3.0),
        speed_ratio=st.floats(0.3, 4.0),
        evict=st.sampled_from([0.0, 0.2]),
    ),
    catalogued=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a_detection_search_stays_within_its_budget_and_delivers(
    budget, images, behaviour, catalogued, seed
):
    """The whole search through plan() in a simulated world whose detectors cost what
    the world says: never over budget, every configuration one the trainer accepts, and
    either a model or BudgetNotEnough before any trial."""
    data = facts(images, 1024, 768)
    catalog = (LITE0,) if catalogued else ()
    minimum = (
        minimum_catalog_search_gpu_seconds(data, catalog, task="detection")
        if catalogued
        else minimum_search_gpu_seconds(data, task="detection")
    )
    world = SearchWorld(
        AutoMLPlanner(),
        data,
        f"{budget * minimum / 3600:.4f}",
        behaviour,
        seed=seed,
        job_uid=f"uid-{seed}",
        task="detection",
        catalog=catalog,
    )
    final = world.run()
    limit = final.budget.limit_gpu_seconds
    for status in world.steps:
        assert (
            status.budget.charged_gpu_seconds + status.budget.reserved_gpu_seconds <= limit + 0.01
        )
    if budget < 1:
        assert (final.phase, final.reason) == (JobPhase.FAILED, "BudgetNotEnough")
        assert final.trials == []
        return
    assert final.phase == JobPhase.SUCCEEDED, final.message
    assert final.best_trial is not None
    for trial in final.trials:
        hyperparameters = Hyperparameters.model_validate(trial.hyperparameters)
        assert hyperparameters.recipe == "train"
        # With a catalog, from scratch only from 20,000 training images.
        assert trial.backbone is not None or not catalogued or images >= 25_000


def test_a_detection_search_that_learned_nothing_never_calls_itself_converged():
    """Detecting nothing scores map 0: a search whose best is 0 has not converged; it
    goes on trying until the budget is spent (BudgetExhausted), where one that learned
    stops on its plateau with budget left."""
    assert reference_floor(facts(100), "detection", None) == 0.0
    assert reference_floor(facts(100), "detection", "mar_300") == 0.0
    data = facts(3_000, 640, 480)
    hours = f"{40 * minimum_search_gpu_seconds(data, task='detection') / 3600:.4f}"

    def search(ceiling: float) -> TrainingJobStatus:
        world = Behaviour(flat=True, ceiling=ceiling)
        return SearchWorld(AutoMLPlanner(), data, hours, world, task="detection").run()

    nothing, learned = search(0.0), search(0.3)
    assert nothing.phase == JobPhase.SUCCEEDED  # a model exists, weak as it is
    assert nothing.stop_reason == StopReason.BUDGET_EXHAUSTED
    assert learned.stop_reason == StopReason.NO_IMPROVEMENT
    assert learned.budget.charged_gpu_seconds < 0.5 * nothing.budget.charged_gpu_seconds
