"""What each detector of the search's ladder costs: forward GMACs of the whole detector
as the trainer builds it (backbone features, scaled FPN with P6/P7, FCOS head), at
224 and 512 px, against the table the cost model prices with (tailor_contract.ladders).

PyTorch's FlopCounterMode, MACs = FLOPs / 2, as `tailor_catalog.measure` counts the
catalog's classifiers. CPU only, a few seconds per model.

    .venv/bin/python bench/detection_gmacs.py [--models a,b]
"""

import argparse

import torch
from torchvision.models.detection.fcos import FCOSHead

from tailor_catalog.measure import gmacs
from tailor_contract.ladders import (
    DETECTION_BACKBONES,
    DETECTION_MEASURED,
    DETECTION_TEST_BACKBONES,
    measured,
)
from tailor_trainer.detection.model import Detector

SIDES = (224, 512)


class _Dense(torch.nn.Module):
    """The detector's dense output as one tensor: what FlopCounterMode runs."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, scores = self.detector(images)
        return torch.cat([boxes.flatten(1), scores.flatten(1)], dim=1)


def main() -> None:
    names = [b.name for b in (*DETECTION_BACKBONES, *DETECTION_TEST_BACKBONES, *DETECTION_MEASURED)]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(names))
    args = parser.parse_args()
    print("model | GMACs 224 px | 512 px | table (224 px) | backbone at 512 px | neck")
    for name in args.models.split(","):
        detector = Detector(name, num_classes=3)
        detector.prune_backbone()
        dense = _Dense(detector)
        figures = [gmacs(dense, side) for side in SIDES]
        with torch.no_grad(), torch.utils.flop_counter.FlopCounterMode(display=False) as count:
            detector.backbone.forward_intermediates(  # type: ignore[operator]
                torch.zeros(1, 3, 512, 512), indices=detector.indices, intermediates_only=True
            )
        backbone = count.get_total_flops() / 2e9
        known = measured(name, "detection")
        table = f"{known.gmacs:.3f}" if known else "-"
        head = detector.head
        assert isinstance(head, FCOSHead)  # the search's detectors are FCOS
        convs = head.classification_head.conv
        neck = (convs[0].out_channels, len(convs) // 3)  # channels, head convolutions
        print(f"{name} | {figures[0]:.3f} | {figures[1]:.2f} | {table} | {backbone:.2f} | {neck}")


if __name__ == "__main__":
    main()
