"""The benchmark's dataset: scikit-learn's handwritten digits as PNG files in COCO form,
split into train, validation (what methods select by) and a held-out test split."""

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tailor_contract import DatasetFacts

METRIC = "top1_accuracy"
SIDE = 32


class HasRoot(Protocol):
    root: Path


@dataclass
class Digits:
    root: Path
    train: int
    val: int
    test: int
    facts: DatasetFacts = field(init=False)

    @property
    def evaluation(self) -> str:
        return str(self.root / "val.json")

    def __post_init__(self) -> None:
        self.facts = DatasetFacts(
            images=self.train,
            classes=10,
            mean_width=SIDE,
            mean_height=SIDE,
            digest="digits",
            eval_images=self.val,
        )


def make_digits(root: Path, train: int, val: int = 300) -> Digits:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = random.Random(0).sample(range(len(digits.target)), len(digits.target))
    splits = {
        "train": order[:train],
        "val": order[train : train + val],
        "test": order[train + val :],
    }
    (root / "img").mkdir(parents=True)
    categories = [{"id": i, "name": str(i)} for i in range(10)]
    for split, ids in splits.items():
        images, annotations = [], []
        for i in ids:
            pixels = (digits.images[i] * 255 / 16).astype("uint8")
            name = f"img/{i}.png"
            small = Image.fromarray(pixels, "L")
            small.resize((SIDE, SIDE), Image.Resampling.BILINEAR).convert("RGB").save(root / name)
            images.append({"id": i, "file_name": name, "width": SIDE, "height": SIDE})
            annotations.append({"id": i, "image_id": i, "category_id": int(digits.target[i])})
        document = {"images": images, "annotations": annotations, "categories": categories}
        (root / f"{split}.json").write_text(json.dumps(document))
    return Digits(root, len(splits["train"]), len(splits["val"]), len(splits["test"]))


def test_accuracy(data: "HasRoot", output: str) -> float:
    """Top-1 of the best checkpoint of a run on the held-out test split."""
    import torch
    from PIL import Image

    from tailor_trainer import checkpoint
    from tailor_trainer.data import DataConfig, create_transform
    from tailor_trainer.model import create_model
    from tailor_trainer.storage import Storage

    try:
        weights, meta = checkpoint.load_best(Storage(None), f"{output}/")
    except Exception:
        return 0.0
    model = create_model(meta["model"], len(meta["classes"]), input_size=meta["input_size"])
    model.load_state_dict(weights)
    model.eval()
    settings = dict(meta["data_config"])
    settings["mean"], settings["std"] = tuple(settings["mean"]), tuple(settings["std"])
    transform = create_transform(DataConfig(**settings), False, 0.0)
    document = json.loads((data.root / "test.json").read_text())
    category = {c["id"]: c["name"] for c in document["categories"]}
    names = {a["image_id"]: category[a["category_id"]] for a in document["annotations"]}
    right = 0
    with torch.no_grad():
        for image in document["images"]:
            pixels = transform(Image.open(data.root / image["file_name"]).convert("RGB"))
            guess = int(model(pixels.unsqueeze(0)).argmax(1))
            right += meta["classes"][guess] == names[image["id"]]
    return right / len(document["images"])
