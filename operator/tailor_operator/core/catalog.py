"""Which catalogued backbones a job may fine-tune, and what the user is told when it
has none.

The catalog is the cluster's Backbone objects; validation reads and verifies the
weights of those serving the job's task, and the search fine-tunes only what it
verified. With no catalog and few images per class (detection: few images) the job
still runs (from scratch), but says plainly, as a condition and an Event, that the model
is unlikely to be good.
"""

from collections.abc import Sequence
from datetime import datetime

from tailor_contract import PretrainedBackbone
from tailor_contract.backbones import Task
from tailor_contract.cost import split_images
from tailor_contract.detection_cost import SCRATCH_FEW_IMAGES
from tailor_operator.core.conditions import set_condition
from tailor_operator.core.status import Condition, TrainingJobStatus

PRETRAINED = "Pretrained"  # condition type: does the search fine-tune pretrained weights?
# Below this many training images per class a network trained from scratch rarely
# generalises; a pretrained backbone is what makes such data useful.
FEW_IMAGES_PER_CLASS = 100
SCRATCH_REASON = "TrainingFromScratch"


def for_task(catalog: Sequence[PretrainedBackbone], task: str) -> list[PretrainedBackbone]:
    """The catalog entries that serve a task, by name (stable order)."""
    return sorted((e for e in catalog if e.serves(task)), key=lambda e: e.name)


def verified_entries(
    offered: Sequence[PretrainedBackbone], verified: Sequence[str]
) -> list[PretrainedBackbone]:
    names = set(verified)
    return [e for e in offered if e.name in names]


def images_per_class(status: TrainingJobStatus) -> float | None:
    summary = status.validation.dataset
    if summary is None or summary.classes <= 0:
        return None
    train, _ = split_images(summary.facts())
    return train / summary.classes


def _ask_for_backbone(why: str, what: str) -> str:
    return (
        f"no pretrained backbone is catalogued for this task{why}: training {what} from "
        "scratch is unlikely to generalise. Ask your platform team to import one "
        "(tailor-models import), or bring more images"
    )


def pretrained_situation(
    status: TrainingJobStatus, task: Task = "classification"
) -> tuple[bool, str, str] | None:
    """(fine-tunes pretrained weights?, reason, message) once validation has said which
    backbones are usable; None before."""
    validation = status.validation
    if validation.state != "Succeeded":
        return None
    if validation.backbones:
        names = ", ".join(e.name for e in validation.backbones)
        return True, "Catalog", f"fine-tunes catalogued backbones: {names}"
    unusable = "; ".join(f"{n}: {why}" for n, why in sorted(validation.unusable_backbones.items()))
    why = f" (catalogued but unusable: {unusable})" if unusable else ""
    summary = validation.dataset
    train = split_images(summary.facts())[0] if summary is not None else None
    if task == "detection" and train is not None and train < SCRATCH_FEW_IMAGES:
        # A detector learns boxes as well as classes: few images fail whatever the classes.
        what = f"a detector on {train} training images"
        return False, SCRATCH_REASON, _ask_for_backbone(why, what)
    per_class = images_per_class(status)
    if task != "detection" and per_class is not None and per_class < FEW_IMAGES_PER_CLASS:
        what = f"on about {per_class:.0f} images per class"
        return False, SCRATCH_REASON, _ask_for_backbone(why, what)
    return False, "NoCatalog", f"trains from scratch: no backbone is catalogued{why}"


def pretrained_condition(
    status: TrainingJobStatus, generation: int, now: datetime, task: Task = "classification"
) -> Condition | None:
    found = pretrained_situation(status, task)
    if found is None:
        return None
    truth, reason, message = found
    return set_condition(
        status.conditions,
        PRETRAINED,
        "True" if truth else "False",
        reason,
        message,
        generation,
        now,
    )
