"""The export's ONNX check on a detector that detects nothing on its samples (an
untrained one: every score below the cut): COCO's mAP has no truth to score it with,
and agreement is ONNX detecting nothing either (the check scored it 0 and refused the
export; found by the detection search's end-to-end test)."""

import pytest
import torch
from torchvision.models.detection.fcos import FCOSHead

from tailor_trainer.detection.export import (
    BOX_TOLERANCE,
    SCORE_TOLERANCE,
    DetectionExportError,
    _onnx,
    _within_float32,
    exact_outputs,
    onnx_check,
)
from tailor_trainer.detection.model import Detector, postprocess


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_a_detector_that_detects_nothing_exports(tmp_path):
    torch.manual_seed(0)
    detector = Detector("test_resnet", num_classes=3)
    detector.prune_backbone()
    head = detector.head
    assert isinstance(head, FCOSHead)
    torch.nn.init.constant_(head.classification_head.cls_logits.bias, -20.0)
    detector.eval()
    samples = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert all(len(found["boxes"]) == 0 for found in postprocess(*detector(samples)))
    path = tmp_path / "model.onnx"
    _onnx(detector, samples[:2], path)
    check = onnx_check(detector, path, samples)
    assert check["map_against_pytorch"] == 1.0
    assert check["max_score_difference"] < 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_the_check_allows_float32_rounding_and_refuses_another_model(tmp_path):
    """Past the fixed tolerances ONNX must be as near the exact (float64) outputs as a
    few times PyTorch's own float32; an ONNX file of slightly different weights fails."""
    torch.manual_seed(1)
    detector = Detector("test_resnet", num_classes=3)
    detector.prune_backbone()
    detector.eval()
    samples = torch.randn(3, 3, 64, 64)
    path = tmp_path / "model.onnx"
    _onnx(detector, samples[:2], path)
    assert "float32_score_error" not in onnx_check(detector, path, samples)  # within 1e-4
    exact_boxes, exact_scores = exact_outputs(detector, samples)
    with torch.no_grad():
        boxes, scores = detector(samples)
    assert 0 < float((scores.double() - exact_scores).abs().max()) < SCORE_TOLERANCE
    assert 0 <= float((boxes.double() - exact_boxes).abs().max()) < BOX_TOLERANCE
    with torch.no_grad():
        for parameter in detector.head.parameters():
            parameter.mul_(1.01)
    with pytest.raises(DetectionExportError, match="from the exact"):
        onnx_check(detector, path, samples)


def test_onnx_as_faithful_as_pytorch_passes_even_where_the_two_differ_more():
    """Measured on a trained EfficientNet-B0 detector at 128 px: ONNX's and PyTorch's
    boxes 0.032 px apart, each within 0.05 px of float64's. The check once allowed 4 times
    PyTorch's float32 error measured on a smaller batch than ONNX's gap (0.030 px) and
    refused the export (a crashed attempt in the detection search's end-to-end test);
    judged against the exact outputs it passes, and a truly worse ONNX does not."""
    faithful = {"float32_box_error": 0.0317, "onnx_box_error": 0.0502}
    _within_float32(faithful, "box", BOX_TOLERANCE, " px")
    worse = {"float32_box_error": 0.0317, "onnx_box_error": 0.3}
    with pytest.raises(DetectionExportError, match=r"allowed 0.254 px"):
        _within_float32(worse, "box", BOX_TOLERANCE, " px")
    # A trained FCOS in CI: ONNX scores 4.9 times as far from float64's as PyTorch's,
    # detections in agreement; refused at 4 times (exit 70, the e2e test failed).
    scores = {"float32_score_error": 8.63e-5, "onnx_score_error": 4.19e-4}
    _within_float32(scores, "score", SCORE_TOLERANCE, "")
    tiny = {"float32_score_error": 1e-6, "onnx_score_error": 9e-5}  # the fixed 1e-4 holds
    _within_float32(tiny, "score", SCORE_TOLERANCE, "")


def test_detections_are_judged_against_the_exact_ones_past_the_fixed_bar():
    """A weak detector's near-tied boxes flip at the score cut and in NMS under rounding
    alone (0.9886 against PyTorch's refused a trained RetinaNet in CI): ONNX may miss
    0.01 plus 8 times what PyTorch's own float32 detections miss of the exact ones."""
    from tailor_trainer.detection.export import _detections_within_float32

    flips = {
        "map_against_pytorch": 0.9886,
        "float32_map_against_exact": 0.995,
        "onnx_map_against_exact": 0.985,
    }
    _detections_within_float32(flips)  # allowed 0.95
    faithful_pytorch = flips | {"float32_map_against_exact": 1.0}
    with pytest.raises(DetectionExportError, match=r"allowed 0.9900"):
        _detections_within_float32(faithful_pytorch)
    worse = flips | {"onnx_map_against_exact": 0.9}
    with pytest.raises(DetectionExportError, match=r"against the exact.*allowed 0.9500"):
        _detections_within_float32(worse)
    # A from-scratch FCOS on 40 images in CI, refused at 4 times (6.2 times here).
    weak = {
        "map_against_pytorch": 0.8984,
        "float32_map_against_exact": 0.9833,
        "onnx_map_against_exact": 0.8957,
    }
    _detections_within_float32(weak)  # allowed 0.8564
    with pytest.raises(DetectionExportError, match=r"allowed 0.8564"):
        _detections_within_float32(weak | {"onnx_map_against_exact": 0.85})
