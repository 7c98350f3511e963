"""The detector: torchvision's points, float32 where it matters, a neck scaled to the
backbone, pretrained weights loaded strictly into the backbone, the shared NMS."""

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from tailor_contract import Hyperparameters, TrialConfig
from tailor_trainer.detection.factory import create_detector
from tailor_trainer.detection.model import Detector, grid_anchors, neck_size, postprocess
from tailor_trainer.errors import ConfigError
from tailor_trainer.storage import Storage


@pytest.mark.parametrize("side", [128, 256, 384])
def test_points_are_torchvisions_anchors(side):
    # At sides that are multiples of 128 (the search's steps). Elsewhere torchvision
    # derives a level's stride as side // cells (96 px: 48 for P6); ours stay the
    # levels' true strides (64).
    shapes = [(-(-side // s), -(-side // s)) for s in (8, 16, 32, 64, 128)]
    generator = AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5)
    features = [torch.zeros(1, 1, h, w) for h, w in shapes]
    expected = generator(ImageList(torch.zeros(1, 3, side, side), [(side, side)]), features)[0]
    assert torch.equal(grid_anchors(shapes, torch.device("cpu")), expected)


def test_under_bf16_autocast_boxes_scores_and_loss_stay_float32():
    torch.manual_seed(0)
    detector = Detector("test_resnet", 3)
    detector.prune_backbone()
    detector.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    images = torch.randn(2, 3, 64, 64)
    targets = [
        {"boxes": torch.tensor([[8.0, 8.0, 40.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    loss = detector.train()(images, targets)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    boxes, scores = detector.eval()(images)
    assert boxes.dtype == scores.dtype == torch.float32
    assert boxes.shape[:2] == scores.shape[:2]
    assert scores.shape[-1] == 3
    assert boxes.min() >= 0
    assert boxes.max() <= 64


def test_the_neck_scales_with_the_backbone():
    assert neck_size([128, 256, 512]) == (256, 4)  # resnet18: torchvision's own neck
    assert neck_size([40, 112, 320]) == (128, 3)  # efficientnet_b0
    assert neck_size([48, 192, 96]) == (64, 2)  # test_resnet
    assert neck_size([8, 8, 8]) == (32, 2)  # GroupNorm's 32 groups: no fewer channels
    small = Detector("test_resnet", 3)
    assert small.fpn.layer_blocks[0][0].out_channels == 64


def _config(tmp_path: Path, pretrained: str) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "job": "a/b",
            "job_uid": "uid",
            "trial": "t",
            "attempt": 1,
            "task": "detection",
            "dataset": {"train": str(tmp_path / "train.json")},
            "model": "test_resnet",
            "pretrained": pretrained,
            "hyperparameters": {},
            "allowance_gpu_seconds": 60,
            "calibration_factor": 1.0,
            "gpus": 0,
            "output": str(tmp_path / "out"),
        }
    )


def test_pretrained_weights_load_strictly_into_the_backbone_and_freeze_its_norms(tmp_path):
    classifier = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    with torch.no_grad():
        classifier.get_parameter("conv1.0.weight").fill_(0.25)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(path))
    detector, data = create_detector(
        _config(tmp_path, str(path)), Hyperparameters(input_size=96), Storage(), 3, 10
    )
    assert data.size == 96
    expected = classifier.state_dict()
    loaded = detector.backbone.state_dict()
    assert loaded
    assert all(torch.equal(value, expected[key]) for key, value in loaded.items())
    assert float(loaded["conv1.0.weight"].flatten()[0]) == 0.25
    detector.train()
    norms = [m for m in detector.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    assert not any(m.training for m in norms)
    assert detector.head.training


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = timm.create_model("test_efficientnet", pretrained=False)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(ConfigError, match="do not fit"):
        create_detector(_config(tmp_path, str(path)), Hyperparameters(), Storage(), 3, 10)


def test_postprocess_suppresses_within_a_class_only_and_keeps_the_best():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]])
    scores = torch.tensor([[[0.9, 0.8], [0.7, 0.01], [0.03, 0.6]]])
    (found,) = postprocess(boxes, scores)
    kept = sorted(
        zip(found["labels"].tolist(), found["scores"].tolist(), strict=True), key=lambda x: -x[1]
    )
    # Box 1 overlaps box 0 (IoU 0.68) in class 0: suppressed. Class 1 keeps box 0 (0.8)
    # and box 2 (0.6); 0.03 and 0.01 are under the 0.05 threshold.
    assert kept == [(0, pytest.approx(0.9)), (1, pytest.approx(0.8)), (1, pytest.approx(0.6))]
    (top,) = postprocess(boxes, scores, score_threshold=0.7, max_detections=1)
    assert top["scores"].tolist() == [pytest.approx(0.9)]


def test_postprocess_drops_empty_boxes_and_a_detector_matches_itself():
    # An untrained head's ReLU gives zero distances: boxes without height. They are never
    # right and NMS keeps them all; the export check once scored such a detector mAP 0.08
    # against itself (an empty box has IoU 0 with itself).
    boxes = torch.tensor([[[0.0, 0, 10, 10], [20, 5, 30, 5], [40, 40, 40.005, 50]]])
    scores = torch.tensor([[[0.9], [0.95], [0.8]]])
    (found,) = postprocess(boxes, scores)
    assert found["boxes"].tolist() == [[0.0, 0, 10, 10]]
    from tailor_trainer.detection.export import _as_truth
    from tailor_trainer.detection.metrics import detection_metrics

    flat = torch.zeros(1, 400, 4)
    flat[0, :, 0] = torch.arange(400.0)
    flat[0, :, 2] = torch.arange(400.0) + torch.tensor([0.0, 4.0]).repeat(200)
    flat[0, :, 3] = 8.0  # every other box has no width
    (many,) = postprocess(flat, torch.linspace(0.1, 0.9, 400).reshape(1, 400, 1))
    assert len(many["boxes"]) > 0
    assert detection_metrics([_as_truth(many, many)], 1).metrics["map"] == pytest.approx(1.0)


def test_a_catalogued_backbone_loads_with_its_normalisation_and_digest(tmp_path):
    import hashlib

    from tailor_contract import PretrainedBackbone

    classifier = timm.create_model("test_resnet", pretrained=False, num_classes=1000)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(path))
    entry = PretrainedBackbone(
        name="test-resnet-in1k",
        architecture="test_resnet",
        weights=str(path),
        digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        gmacs=0.01,
    )
    config = _config(tmp_path, "").model_copy(update={"pretrained": None, "backbone": entry})
    detector, data = create_detector(config, Hyperparameters(), Storage(), 3, 10)
    assert (data.size, data.mean, data.std) == (512, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.equal(
        detector.backbone.state_dict()["conv1.0.weight"], classifier.state_dict()["conv1.0.weight"]
    )
    wrong = config.model_copy(
        update={"backbone": entry.model_copy(update={"digest": "sha256:" + "0" * 64})}
    )
    with pytest.raises(ConfigError, match="digest"):
        create_detector(wrong, Hyperparameters(), Storage(), 3, 10)


def test_channels_last_gives_the_same_detections():
    # CUDA runs channels-last (the head reshapes its outputs: a view must not scramble them).
    torch.manual_seed(0)
    detector = Detector("test_resnet", 3).eval()
    detector.prune_backbone()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = detector(images)
        detector.to(memory_format=torch.channels_last)
        last_boxes, last_scores = detector(images.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(boxes, last_boxes, atol=1e-4)
    assert torch.allclose(scores, last_scores, atol=1e-5)
