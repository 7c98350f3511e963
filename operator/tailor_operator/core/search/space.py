"""The search space: which backbones, which hyperparameter ranges, and configurations
drawn from them. Defaults come from the dataset's size facts; spec.search.models narrows
the backbones."""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tailor_contract import DatasetFacts
from tailor_contract.cost import (
    BACKBONES,
    INPUT_SIDES,
    Backbone,
    default_input_side,
    find_backbone,
    split_images,
)
from tailor_operator.core.spec import Scalar

# Backbones that train well from scratch with AdamW and few knobs, in the order the
# default configuration (the first trial, and the fixed recipe) prefers them.
ROBUST = ("resnet50", "resnet18", "resnet10t", "test_resnet")
BATCH_SIZES = (16, 32, 64, 128, 256)
LR_RANGE = (1e-4, 1e-2)
WEIGHT_DECAY_RANGE = (1e-3, 0.2)
AUGMENTATION_RANGE = (0.0, 0.9)
# Attention models want a smaller peak learning rate than convolutions do.
VIT_LR_SCALE = 0.5
# Share of new configurations drawn near the best one once results exist.
EXPLOIT_SHARE = 0.3


@dataclass(frozen=True)
class Config:
    model: str
    input_size: int
    batch_size: int
    lr: float
    weight_decay: float
    augmentation: float

    def hyperparameters(self, epochs: float) -> dict[str, Scalar]:
        return {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "input_size": self.input_size,
            "augmentation": self.augmentation,
            "epochs": epochs,
        }


def config_of(model: str, hyperparameters: dict[str, Scalar]) -> Config:
    """The configuration a trial runs, read back from its status (defaults filled)."""

    def number(key: str, default: float) -> float:
        value = hyperparameters.get(key, default)
        return float(value) if isinstance(value, int | float) else default

    return Config(
        model=model,
        input_size=int(number("input_size", 224)),
        batch_size=int(number("batch_size", 32)),
        lr=number("lr", 1e-3),
        weight_decay=number("weight_decay", 0.05),
        augmentation=number("augmentation", 0.5),
    )


def _is_vit(model: str) -> bool:
    return "vit" in model


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _sig(value: float) -> float:
    """Three significant digits: readable in the status, and exactly reproducible."""
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class SearchSpace:
    models: tuple[Backbone, ...]  # the backbones the search may use, cheapest first
    preferred: tuple[Backbone, ...]  # of those, the ones suited to the data: sampled
    sides: tuple[int, ...]
    default_side: int
    batch_sizes: tuple[int, ...]
    default_batch: int

    def restrict(self, keep: Callable[[Backbone], bool]) -> "SearchSpace":
        """The space without the backbones `keep` refuses (the cheapest always stays)."""
        models = tuple(b for b in self.models if keep(b)) or self.models[:1]
        preferred = tuple(b for b in self.preferred if b in models) or models
        return SearchSpace(
            models, preferred, self.sides, self.default_side, self.batch_sizes, self.default_batch
        )

    def default(self) -> Config:
        """A robust recipe: a ResNet suited to the data, the trainer's default knobs."""
        names = [b.name for b in self.preferred]
        model = next((m for m in ROBUST if m in names), self.preferred[-1].name)
        lr = 1e-3 * (VIT_LR_SCALE if _is_vit(model) else 1.0)
        return Config(model, self.default_side, self.default_batch, lr, 0.05, 0.5)

    def sample(self, rng: random.Random) -> Config:
        model = rng.choice(self.preferred).name
        lr = _log_uniform(rng, *LR_RANGE) * (VIT_LR_SCALE if _is_vit(model) else 1.0)
        return Config(
            model=model,
            input_size=rng.choice(self.sides),
            batch_size=rng.choice(self.batch_sizes),
            lr=_sig(lr),
            weight_decay=_sig(_log_uniform(rng, *WEIGHT_DECAY_RANGE)),
            augmentation=round(rng.uniform(*AUGMENTATION_RANGE), 2),
        )

    def neighbour(self, config: Config, rng: random.Random) -> Config:
        """A configuration near one that did well: same backbone, nearby knobs."""
        low, high = AUGMENTATION_RANGE
        augmentation = min(high, max(low, config.augmentation + rng.uniform(-0.2, 0.2)))
        sides = sorted(self.sides, key=lambda s: abs(s - config.input_size))[:2]
        return Config(
            model=config.model,
            input_size=rng.choice(sides),
            batch_size=config.batch_size,
            lr=_sig(config.lr * 2 ** rng.uniform(-1, 1)),
            weight_decay=_sig(config.weight_decay * 2 ** rng.uniform(-1, 1)),
            augmentation=round(augmentation, 2),
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


def build_space(facts: DatasetFacts, allowed: Sequence[str] = ()) -> SearchSpace:
    """Every backbone the search may use for this data (spec.search.models, else the
    ladder), the preferred ones first among equals, and the knobs' ranges."""
    train, _ = split_images(facts)
    models = (
        tuple(sorted((find_backbone(n) for n in allowed), key=lambda b: b.relative_cost))
        if allowed
        else BACKBONES
    )
    preferred = tuple(
        b
        for b in models
        if b.min_images <= train and (b.max_images is None or train <= b.max_images)
    )
    side = default_input_side(facts)
    batches, batch = _batches(train)
    return SearchSpace(models, preferred or models, _sides(side), side, batches, batch)
