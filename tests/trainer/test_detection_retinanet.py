"""RetinaNet, the second head: torchvision's anchors, loss and decoding on our backbone
and pyramid; float32 under autocast; an export that matches PyTorch; a run that learns,
exports and predicts."""

import copy
import json
from collections import OrderedDict

import pytest
import torch
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.image_list import ImageList

from tailor_contract import AttemptResult, ExitCode, Hyperparameters
from tailor_trainer.cli import main
from tailor_trainer.detection import retinanet
from tailor_trainer.detection.export import write_detection_bundle
from tailor_trainer.detection.model import STRIDES, Detector
from tailor_trainer.errors import ConfigError
from tests.trainer.detection_data import write_digits
from tests.trainer.test_detection_run import _config

TARGETS = [
    {
        "boxes": torch.tensor([[8.0, 8.0, 40.0, 30.0], [60, 50, 120, 120]]),
        "labels": torch.tensor([1, 0]),
    },
    {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
]


def _detector(classes: int = 3) -> Detector:
    torch.manual_seed(0)
    detector = Detector("test_resnet", classes, kind="retinanet")
    detector.prune_backbone()
    return detector


@pytest.mark.parametrize("side", [128, 256])
def test_anchors_are_torchvisions(side):
    shapes = [(-(-side // s), -(-side // s)) for s in STRIDES]
    features = [torch.zeros(1, 1, h, w) for h, w in shapes]
    expected = retinanet._GENERATOR(
        ImageList(torch.zeros(1, 3, side, side), [(side, side)]), features
    )[0]
    found = retinanet.anchors(shapes, STRIDES, torch.device("cpu"))
    assert found.dtype == torch.float32
    assert torch.equal(found, expected)
    assert len(found) == retinanet.ANCHORS_PER_POINT * sum(h * w for h, w in shapes)


class _Pyramid(torch.nn.Module):
    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = copy.deepcopy(detector)
        self.out_channels = detector.fpn.layer_blocks[0][0].out_channels

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        levels = self.detector.backbone.forward_intermediates(  # type: ignore[operator]
            images, indices=self.detector.indices, intermediates_only=True
        )
        pyramid: OrderedDict[str, torch.Tensor] = self.detector.fpn(
            OrderedDict((str(i), x) for i, x in enumerate(levels))
        )
        return pyramid


def test_the_loss_and_the_boxes_are_torchvisions_retinanet():
    detector = _detector()
    side = 128
    reference = RetinaNet(
        _Pyramid(detector),
        3,
        min_size=side,
        max_size=side,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        anchor_generator=retinanet._GENERATOR,
        head=copy.deepcopy(detector.head),
        score_thresh=0.0,
        detections_per_img=10_000,
    ).train()
    images = torch.randn(2, 3, side, side)
    with torch.no_grad():
        ours = detector.train()(images, TARGETS)
        theirs = reference(list(images), TARGETS)
    assert float(ours) == pytest.approx(float(sum(theirs.values())), rel=1e-5)
    # Decoding: with zero deltas every box is its anchor, clipped to the image.
    last = detector.head.get_submodule("regression_head.bbox_reg")
    assert isinstance(last, torch.nn.Conv2d)
    with torch.no_grad():
        last.weight.zero_()
        assert last.bias is not None
        last.bias.zero_()
        boxes, scores = detector.eval()(images)
    shapes = [(side // s, side // s) for s in STRIDES]
    expected = retinanet.anchors(shapes, STRIDES, torch.device("cpu")).clamp(0, side)
    assert torch.allclose(boxes[0], expected, atol=1e-4)
    assert scores.shape == (2, len(expected), 3)
    assert float(scores.min()) >= 0
    assert float(scores.max()) <= 1


def test_under_bf16_autocast_the_loss_and_outputs_stay_float32():
    detector = _detector()
    detector.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    images = torch.randn(2, 3, 128, 128)
    loss = detector.train()(images, TARGETS)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    boxes, scores = detector.eval()(images)
    assert boxes.dtype == scores.dtype == torch.float32


META = {
    "model": "test_resnet",
    "classes": ["a", "b", "c"],
    "data_config": {"size": 128, "mean": [0.5] * 3, "std": [0.5] * 3},
    "hyperparameters": {"detector": "retinanet"},
}


def test_the_export_matches_pytorch(tmp_path):
    detector = _detector().eval()
    # Untrained, RetinaNet scores every anchor sigmoid(-4.6) = 0.01, under the 0.05 the
    # post-processing keeps: lift the class prior so there are detections to compare.
    prior = detector.head.get_submodule("classification_head.cls_logits")
    assert isinstance(prior, torch.nn.Conv2d)
    assert prior.bias is not None
    with torch.no_grad():
        prior.bias.fill_(-1.0)
    config, check = write_detection_bundle(detector, META, tmp_path, torch.randn(3, 3, 128, 128))
    assert config["detector"] == "retinanet"
    assert check["pytorch_detections"] > 100
    assert check["max_score_difference"] <= 1e-4
    assert check["max_box_difference"] <= 1e-2
    assert check["map_against_pytorch"] >= 0.99


def test_an_export_that_finds_nothing_on_the_samples_passes_when_onnx_agrees(tmp_path):
    # Once a failed export: mAP against an empty truth is 0.
    _, check = write_detection_bundle(_detector(), META, tmp_path, torch.randn(2, 3, 128, 128))
    assert check["pytorch_detections"] == 0
    assert check["map_against_pytorch"] == 1.0


def test_the_knob_is_for_detection_only():
    assert Hyperparameters().detector == "fcos"
    with pytest.raises(ConfigError, match="unknown detector"):
        Detector("test_resnet", 3, kind="yolo")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Hyperparameters(detector="yolo")  # type: ignore[arg-type]


def test_a_classification_run_refuses_the_knob(tmp_path, termination_log):
    config = json.loads(_config(tmp_path, tmp_path, detector="retinanet").read_text())
    config["task"] = "classification"
    path = tmp_path / "classification.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path)]) == ExitCode.INVALID_CONFIG
    result = AttemptResult.model_validate_json(termination_log.read_text())
    assert "detector 'retinanet' is for detection" in result.reason


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_retinanet_run_learns_exports_and_predicts(tmp_path, termination_log, capsys):
    data = tmp_path / "digits"
    write_digits(data, "train", 60, seed=0)
    write_digits(data, "eval", 20, seed=1)
    config = json.loads(_config(tmp_path, data, epochs=6, detector="retinanet").read_text())
    config["export"] = True
    path = tmp_path / "config-export.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path)]) == ExitCode.SUCCESS
    result = AttemptResult.model_validate_json(termination_log.read_text())
    # From scratch on 60 images, 42 steps: measured map 0.055 and map_30 0.174 (after 7
    # steps: 0.002 and 0.020).
    assert result.metrics["map_30"] > 0.1
    assert result.metrics["map"] > 0.02
    bundle = tmp_path / "out" / "export" / "attempt-1"
    card = json.loads((bundle / "model_card.json").read_text())
    assert card["onnx_check"]["map_against_pytorch"] >= 0.99
    assert json.loads((bundle / "config.json").read_text())["detector"] == "retinanet"
    assert (bundle / "report.html").is_file()
    capsys.readouterr()
    image = str(data / "eval" / "0000.png")
    found = {}
    for backend in ("onnx", "torch"):
        argv = ["predict", "--model", str(bundle), "--backend", backend, "--json"]
        assert main([*argv, "--min-confidence", "0.1", image]) == ExitCode.SUCCESS
        found[backend] = json.loads(capsys.readouterr().out)["objects"]
    assert found["onnx"]
    assert [o["boundingBox"] for o in found["onnx"]] == [o["boundingBox"] for o in found["torch"]]
