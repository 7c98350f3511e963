"""The search space: which backbones, which recipes and hyperparameter ranges, and
configurations drawn from them.

Pretrained first: when the catalog holds backbones for the task, the search starts with
a linear probe of the cheapest (cheap on any hardware, and a floor every later trial
must clear), then fine-tunes catalogued backbones; it trains from scratch only when the
data is large enough to profit. Without a catalog it trains the ladder from scratch.
Defaults come from the dataset's size facts; spec.search.models narrows the backbones
(a name matches a catalog entry's name or its architecture). Detection searches its own
ladder of whole detectors, sides and knobs (knobs.py, detection_space.py).
"""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tailor_contract import DatasetFacts, PretrainedBackbone
from tailor_contract.backbones import Task
from tailor_contract.cost import (
    INPUT_SIDES,
    Backbone,
    catalog_backbone,
    default_input_side,
    eval_every_epochs,
    find_backbone,
    pretrained_side,
    pretrained_sides,
    split_images,
)
from tailor_contract.ladders import ladder
from tailor_operator.core.search.configs import Config, config_of
from tailor_operator.core.search.detection_space import (
    detection_batches,
    detection_scratch_worthwhile,
    detection_side_range,
)
from tailor_operator.core.search.knobs import LINEAR_PROBE, PROBE_FINETUNE, TRAIN, Knobs, knobs_for

__all__ = [
    "LINEAR_PROBE",
    "PROBE_FINETUNE",
    "TRAIN",
    "Config",
    "SearchSpace",
    "build_space",
    "config_of",
]

# Backbones that train well from scratch with AdamW and few knobs, in the order the
# default configuration (the first trial, and the fixed recipe) prefers them.
ROBUST = ("resnet50", "resnet18", "resnet10t", "test_resnet")
BATCH_SIZES = (16, 32, 64, 128, 256)
# Attention models want a smaller peak learning rate than convolutions do.
VIT_LR_SCALE = 0.5
# Share of new configurations drawn near the best one once results exist.
EXPLOIT_SHARE = 0.3

# Training images per class from which training from scratch joins the search: below,
# a randomly initialised network overfits what a pretrained one generalises from.
SCRATCH_MIN_IMAGES_PER_CLASS = 200
SCRATCH_MIN_IMAGES = 5_000
# With both, the share of new configurations that fine-tune a catalogued backbone.
PRETRAINED_SHARE = 0.7


def _is_vit(model: str) -> bool:
    return "vit" in model


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _sig(value: float) -> float:
    """Three significant digits: readable in the status, and exactly reproducible."""
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class SearchSpace:
    models: tuple[Backbone, ...]  # the scratch backbones the search may use, cheapest first
    preferred: tuple[Backbone, ...]  # of those, the ones suited to the data: sampled
    sides: tuple[int, ...]
    default_side: int
    batch_sizes: tuple[int, ...]
    default_batch: int
    # Catalogued backbones to fine-tune, cheapest first; empty: scratch training only.
    catalog: tuple[PretrainedBackbone, ...] = ()
    catalog_sides: tuple[int, ...] = ()  # the side each catalog entry is fed by default
    scratch: bool = True  # whether training from scratch is part of the search
    task: Task = "classification"
    eval_every: float = 1.0  # epochs between an attempt's evaluations

    @property
    def pretrained(self) -> bool:
        return bool(self.catalog)

    @property
    def knobs(self) -> Knobs:
        return knobs_for(self.task)

    @property
    def probing(self) -> bool:
        """Whether the search starts with a linear probe (classification's catalog)."""
        return self.pretrained and self.knobs.probes

    def backbone_of(self, config: Config) -> Backbone:
        """What a configuration's backbone costs (the catalog's, else the ladder's)."""
        for entry in self.catalog:
            if entry.name == config.backbone:
                return catalog_backbone(entry, self.task)
        return find_backbone(config.model, self.task)

    def cheapest(self) -> Backbone:
        """The cheapest backbone any configuration of this space uses."""
        if self.catalog:
            return catalog_backbone(self.catalog[0], self.task)
        return self.models[0]

    def sides_for(self, entry: PretrainedBackbone | None) -> tuple[int, ...]:
        """The sides a configuration on this catalog entry (None: from scratch) uses."""
        if entry is not None and self.knobs.sides_from_backbone:
            return pretrained_sides(entry)
        return self.sides

    def restrict(self, keep: Callable[[Backbone], bool]) -> "SearchSpace":
        """The space without the backbones `keep` refuses (the cheapest always stays)."""
        models = tuple(b for b in self.models if keep(b)) or self.models[:1]
        preferred = tuple(b for b in self.preferred if b in models) or models
        kept = [
            (entry, side)
            for entry, side in zip(self.catalog, self.catalog_sides, strict=True)
            if keep(catalog_backbone(entry, self.task))
        ] or list(zip(self.catalog[:1], self.catalog_sides[:1], strict=True))
        return replace(
            self,
            models=models,
            preferred=preferred,
            catalog=tuple(e for e, _ in kept),
            catalog_sides=tuple(s for _, s in kept),
        )

    # -- the configurations -------------------------------------------------------
    def probe(self) -> Config:
        """A linear probe of the cheapest catalogued backbone: features once, a linear
        classifier on them. Cheap anywhere, and the floor the search must clear."""
        entry, side = self.catalog[0], self.catalog_sides[0]
        return Config(
            entry.architecture,
            side,
            self.default_batch,
            1e-3,
            0.0,
            0.0,
            recipe=LINEAR_PROBE,
            backbone=entry.name,
        )

    def default(self) -> Config:
        """A robust recipe: with a catalog, the probe then fine-tuning of its cheapest
        backbone; else a ResNet suited to the data with the trainer's default knobs."""
        knobs = self.knobs
        if self.catalog:
            entry, side = self.catalog[0], self.catalog_sides[0]
            return Config(
                entry.architecture,
                side,
                self.default_batch,
                knobs.finetune_default_lr,
                0.05,
                knobs.finetune_default_augmentation,
                recipe=knobs.finetune_recipe,
                backbone=entry.name,
                backbone_lr_scale=knobs.finetune_default_backbone_lr_scale,
                eval_every=self.eval_every,
            )
        return self.scratch_default()

    def scratch_default(self) -> Config:
        """The robust recipe from scratch: a ResNet suited to the data, the trainer's
        default knobs (the first trial of a search without a catalog)."""
        knobs = self.knobs
        names = [b.name for b in self.preferred]
        model = next((m for m in ROBUST if m in names), self.preferred[-1].name)
        lr = knobs.default_lr * (VIT_LR_SCALE if _is_vit(model) else 1.0)
        return Config(
            model, self.default_side, self.default_batch, lr, 0.05, 0.5, eval_every=self.eval_every
        )

    def sample(self, rng: random.Random) -> Config:
        if self.catalog and (not self.scratch or rng.random() < PRETRAINED_SHARE):
            return self._sample_pretrained(rng)
        knobs = self.knobs
        model = rng.choice(self.preferred).name
        lr = _log_uniform(rng, *knobs.lr_range) * (VIT_LR_SCALE if _is_vit(model) else 1.0)
        return Config(
            model=model,
            input_size=rng.choice(self.sides),
            batch_size=rng.choice(self.batch_sizes),
            lr=_sig(lr),
            weight_decay=_sig(_log_uniform(rng, *knobs.weight_decay_range)),
            augmentation=round(rng.uniform(*knobs.augmentation_range), 2),
            eval_every=self.eval_every,
        )

    def _sample_pretrained(self, rng: random.Random) -> Config:
        knobs = self.knobs
        entry = rng.choice(self.catalog)
        return Config(
            model=entry.architecture,
            input_size=rng.choice(self.sides_for(entry)),
            batch_size=rng.choice(self.batch_sizes),
            lr=_sig(_log_uniform(rng, *knobs.finetune_lr_range)),
            weight_decay=_sig(_log_uniform(rng, *knobs.weight_decay_range)),
            augmentation=round(rng.uniform(*knobs.finetune_augmentation_range), 2),
            recipe=knobs.finetune_recipe,
            backbone=entry.name,
            backbone_lr_scale=_sig(_log_uniform(rng, *knobs.backbone_lr_scale_range)),
            eval_every=self.eval_every,
        )

    def neighbour(self, config: Config, rng: random.Random) -> Config:
        """A configuration near one that did well: same backbone and recipe, nearby knobs."""
        if config.probe:
            return self.sample(rng)  # a probe has no knobs worth perturbing
        knobs = self.knobs
        ranges = knobs.finetune_augmentation_range, knobs.augmentation_range
        low, high = ranges[0] if config.pretrained else ranges[1]
        augmentation = min(high, max(low, config.augmentation + rng.uniform(-0.2, 0.2)))
        entry = next((e for e in self.catalog if e.name == config.backbone), None)
        around = self.sides_for(entry)
        sides = sorted(around, key=lambda s: abs(s - config.input_size))[:2]
        scale = config.backbone_lr_scale
        if config.pretrained:
            scale = min(1.0, _sig(scale * 2 ** rng.uniform(-1, 1)))
        return replace(
            config,
            input_size=rng.choice(sides),
            lr=_sig(config.lr * 2 ** rng.uniform(-1, 1)),
            weight_decay=_sig(config.weight_decay * 2 ** rng.uniform(-1, 1)),
            augmentation=round(augmentation, 2),
            backbone_lr_scale=scale,
        )


def _batches(train_images: int) -> tuple[tuple[int, ...], int]:
    # At least about 8 steps per epoch; larger datasets afford larger batches.
    fitting = tuple(b for b in BATCH_SIZES if b * 8 <= max(train_images, 16 * 8)) or (16,)
    default = 32 if train_images < 20_000 else 64
    default = max(b for b in fitting if b <= default)
    around = tuple(b for b in fitting if default // 2 <= b <= default * 2)
    return around, default


def _sides(default: int) -> tuple[int, ...]:
    return tuple(s for s in INPUT_SIDES if default // 2 <= s <= min(288, default * 2))


def scratch_worthwhile(facts: DatasetFacts, task: Task = "classification") -> bool:
    """Whether the data is large enough for training from scratch to compete with
    fine-tuning a pretrained backbone."""
    if task == "detection":
        return detection_scratch_worthwhile(facts)
    train, _ = split_images(facts)
    per_class = train / max(1, facts.classes)
    return train >= SCRATCH_MIN_IMAGES and per_class >= SCRATCH_MIN_IMAGES_PER_CLASS


def allowed_catalog(
    catalog: Sequence[PretrainedBackbone], allowed: Sequence[str]
) -> tuple[PretrainedBackbone, ...]:
    """The catalog entries spec.search.models allows (all when it names none)."""
    if not allowed:
        return tuple(catalog)
    return tuple(e for e in catalog if e.name in allowed or e.architecture in allowed)


def build_space(
    facts: DatasetFacts,
    allowed: Sequence[str] = (),
    catalog: Sequence[PretrainedBackbone] = (),
    task: Task = "classification",
) -> SearchSpace:
    """Every backbone the search may use for this data (spec.search.models, else the
    catalog and the task's ladder), the preferred ones first among equals, and the
    knobs' ranges. `catalog`: the verified catalogued backbones for the job's task."""
    train, _ = split_images(facts)
    entries = sorted(
        allowed_catalog(catalog, allowed),
        key=lambda e: (catalog_backbone(e, task).relative_cost, e.name),
    )
    catalogued = {name for e in entries for name in (e.name, e.architecture)}
    scratch_names = [n for n in allowed if n not in catalogued]
    if allowed:
        models = tuple(sorted((find_backbone(n, task) for n in scratch_names), key=_cost))
    else:
        models = ladder(task)
    worthwhile = bool(allowed) or scratch_worthwhile(facts, task)
    scratch = not entries or (bool(models) and worthwhile)
    if not models:
        # Only catalogued backbones allowed: the ladder is kept for pricing, never sampled.
        models, scratch = ladder(task), False
    preferred = tuple(
        b
        for b in models
        if b.min_images <= train and (b.max_images is None or train <= b.max_images)
    )
    if task == "detection":
        sides, side = detection_side_range(facts)
        batches, batch = detection_batches(train)
        # A detector's side follows its images, whichever backbone it has.
        catalog_sides = tuple(side for _ in entries)
    else:
        side = default_input_side(facts)
        sides = _sides(side)
        batches, batch = _batches(train)
        catalog_sides = tuple(pretrained_side(facts, e) for e in entries)
    return SearchSpace(
        models,
        preferred or models[:1],  # data smaller than every preference: the cheapest
        sides,
        side,
        batches,
        batch,
        catalog=tuple(entries),
        catalog_sides=catalog_sides,
        scratch=scratch,
        task=task,
        eval_every=eval_every_epochs(facts, task),
    )


def _cost(backbone: Backbone) -> float:
    return backbone.relative_cost
