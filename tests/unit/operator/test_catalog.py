"""The catalog through whole plans: validation verifies the backbones, the trials
fine-tune what it verified, and a job without pretrained weights on few images says so."""

import pytest

from tailor_contract import AttemptResult, DatasetFacts
from tailor_operator.core.catalog import PRETRAINED, SCRATCH_REASON, pretrained_situation
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.status import (
    DatasetSummary,
    TrainingJobStatus,
    ValidationStatus,
)
from tests.unit.operator.sim import Sim
from tests.unit.operator.test_search_catalog import LITE0, MOBILENET

FEW = DatasetFacts(
    images=100, classes=10, mean_width=28, mean_height=28, digest="d", majority_fraction=0.1
)
MANY = FEW.model_copy(update={"images": 20_000})


def validate(sim: Sim, facts: DatasetFacts, verified: list[str], unusable=None) -> None:
    sim.step(0)
    (name,) = sim.pod_names("validate")
    sim.run(name, "gpu-a", 1)
    result = AttemptResult(
        exit="SUCCESS",
        dataset=facts,
        verified_backbones=verified,
        unusable_backbones=unusable or {},
    )
    sim.finish(name, 0, 5, message=result.to_termination_message())
    sim.step(6)


def test_validation_verifies_the_catalog_and_the_first_trial_probes_it():
    sim = Sim(
        planner=AutoMLPlanner(),
        catalog=(LITE0, MOBILENET),
        budget={"gpuHours": "1"},
        output="s3://models/job/",
    )
    sim.step(0)
    (validation,) = sim.pod_names("validate")
    offered = [e["name"] for e in sim.config(validation)["catalog"]]
    assert offered == ["efficientnet-lite0", "mobilenetv2"]
    validate(sim, FEW, ["efficientnet-lite0"], {"mobilenetv2": "digest mismatch"})
    status = sim.status
    assert [e.name for e in status.validation.backbones] == ["efficientnet-lite0"]
    assert status.validation.unusable_backbones == {"mobilenetv2": "digest mismatch"}
    assert sim.last is not None
    assert sim.last.verified_backbones == ("efficientnet-lite0",)
    pretrained = next(c for c in status.conditions if c.type == PRETRAINED)
    assert (pretrained.status, pretrained.reason) == ("True", "Catalog")
    (probe,) = sim.pod_names("t0")
    config = sim.config(probe)
    # The trial carries the exact entry validation verified, digest included.
    assert config["backbone"]["digest"] == LITE0.digest
    assert config["model"] == "tf_efficientnet_lite0"
    assert config["hyperparameters"]["recipe"] == "linear_probe"
    assert config["catalog"] == []
    assert [t["name"] for t in config["search"]] == ["t0"]


def test_few_images_without_a_catalog_warn_that_scratch_training_will_not_generalise():
    sim = Sim(planner=AutoMLPlanner(), budget={"gpuHours": "1"})
    validate(sim, FEW, [])
    pretrained = next(c for c in sim.status.conditions if c.type == PRETRAINED)
    assert (pretrained.status, pretrained.reason) == ("False", SCRATCH_REASON)
    assert "8 images per class" in pretrained.message  # 80 of 100 train (20% held out)
    warnings = [e for e in sim.events if e[0] == "Warning" and e[1] == SCRATCH_REASON]
    assert len(warnings) == 1
    sim.step(7)  # replanned: the event is not repeated
    assert len([e for e in sim.events if e[1] == SCRATCH_REASON]) == 1


@pytest.mark.parametrize(
    ("state", "images", "verified", "unusable", "expected"),
    [
        ("Running", 100, [], {}, None),
        ("Succeeded", 100, [LITE0], {}, (True, "Catalog")),
        ("Succeeded", 100, [], {}, (False, SCRATCH_REASON)),
        ("Succeeded", 100, [], {"x": "unreadable"}, (False, SCRATCH_REASON)),
        ("Succeeded", 20_000, [], {}, (False, "NoCatalog")),
    ],
)
def test_pretrained_situation(state, images, verified, unusable, expected):
    status = TrainingJobStatus(
        validation=ValidationStatus(
            state=state,
            dataset=DatasetSummary(images=images, classes=10, eval_images=50),
            backbones=verified,
            unusable_backbones=unusable,
        )
    )
    found = pretrained_situation(status)
    assert (found[:2] if found else None) == expected
    if unusable and found:
        assert "unreadable" in found[2]  # the platform team learns why it was not used
