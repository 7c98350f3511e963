"""`tailor-train predict`: an exported bundle classifies images, on ONNX or PyTorch."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tailor_trainer.cli import main
from tailor_trainer.errors import ConfigError
from tailor_trainer.exporter import write_bundle
from tailor_trainer.model import create_model
from tailor_trainer.predict import load_classifier, predict, read_bundle_config
from tailor_trainer.storage import Storage

CLASSES = ["cat", "dog", "owl"]
META = {
    "model": "test_resnet",
    "task": "classification",
    "classes": CLASSES,
    "input_size": 32,
    "data_config": {
        "size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "crop_pct": 0.95,
    },
    "metrics": {},
    "step": 1,
    "primary_metric": "top1_accuracy",
    "dataset_digest": "sha256:abc",
    "gpu_seconds": 1.0,
    "trial": {"dataset": {"train": "train.json", "evaluation": None}},
    "hyperparameters": {},
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    torch.manual_seed(0)
    model = create_model("test_resnet", len(CLASSES), input_size=32).eval()
    write_bundle(model, META, folder, torch.randn(4, 3, 32, 32))
    return folder


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    generator = np.random.default_rng(0)
    paths = []
    for index in range(3):
        pixels = generator.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        path = tmp_path / f"image-{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def test_onnx_and_pytorch_agree(bundle, images):
    storage = Storage()
    by_onnx = predict(load_classifier(storage, str(bundle), "onnx"), storage, images, top=3)
    by_torch = predict(load_classifier(storage, str(bundle), "torch"), storage, images, top=3)
    for onnx, pytorch in zip(by_onnx, by_torch, strict=True):
        assert onnx.label == pytorch.label
        assert dict(onnx.top) == pytest.approx(dict(pytorch.top), abs=1e-4)
        assert sum(p for _, p in onnx.top) == pytest.approx(1.0)  # all three classes
        assert [p for _, p in onnx.top] == sorted((p for _, p in onnx.top), reverse=True)
        assert onnx.label in CLASSES


def test_the_command_prints_a_class_and_its_probability(bundle, images, capsys):
    assert main(["predict", "--model", str(bundle), "--top", "2", images[0]]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{images[0]}: ")
    assert "next: " in line
    assert main(["predict", "--model", str(bundle), "--json", *images]) == 0
    documents = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [d["image"] for d in documents] == images
    assert all(d["label"] in CLASSES and 0 < d["probability"] <= 1 for d in documents)


def test_a_missing_model_or_image_is_named(bundle, images, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path / "nowhere"), images[0]]) == 2
    assert "no exported model at" in capsys.readouterr().err
    assert main(["predict", "--model", str(bundle), str(tmp_path / "missing.png")]) == 2
    assert "no image at" in capsys.readouterr().err
    (tmp_path / "text.png").write_text("not an image")
    assert main(["predict", "--model", str(bundle), str(tmp_path / "text.png")]) == 2
    assert "is not a readable image" in capsys.readouterr().err


def test_a_config_that_is_not_timms_is_refused_by_name():
    with pytest.raises(
        ConfigError, match=r"x/config\.json is not an exported model's config\.json"
    ):
        read_bundle_config(json.dumps({"architecture": "resnet18"}), "x/config.json")
