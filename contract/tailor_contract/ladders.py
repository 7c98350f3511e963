"""The backbones the search trains from scratch, per task, with what one image costs.

Each figure is forward GMACs per image at 224 px measured with torch.utils.flop_counter
(PyTorch's FlopCounterMode, MACs = FLOPs / 2) on timm 1.0. For detection it is the
whole detector as the trainer builds it (tailor_trainer.detection.model: the backbone's
stride 8/16/32 features, the FPN with P6/P7 and the FCOS head, scaled by `neck_size`);
convolutions scale with the area, so 512 px costs (512/224)**2 = 5.22 times as much
(measured: 5.22 for every model below). `bench/detection_gmacs.py` re-measures them.
"""

from dataclasses import dataclass

from tailor_contract.backbones import Task


@dataclass(frozen=True)
class Backbone:
    name: str
    gmacs: float  # forward multiply-accumulates per image at 224 px, in billions
    # Throughput per GMAC relative to a ResNet: tiny models and depthwise convolutions
    # keep a GPU less busy per MAC than dense convolutions do.
    efficiency: float = 1.0
    # Below this many training images the search prefers smaller backbones (from
    # scratch, a large model overfits a small dataset); above max_images it prefers
    # larger ones. Preferences only: budget and spec.search.models decide eligibility.
    min_images: int = 0
    max_images: int | None = None

    @property
    def relative_cost(self) -> float:
        """Effective GMACs: what one image costs this backbone on a GPU."""
        return self.gmacs / self.efficiency


def _rising(backbones: tuple[Backbone, ...]) -> tuple[Backbone, ...]:
    return tuple(sorted(backbones, key=lambda b: b.relative_cost))


# Classification: the product's ladder for training from scratch, in rising cost.
BACKBONES: tuple[Backbone, ...] = _rising(
    (
        Backbone("resnet10t", 1.10, 1.0, min_images=500),
        Backbone("vit_tiny_patch16_224", 1.25, 0.9, min_images=20_000),
        Backbone("resnet18", 1.81, 1.0, min_images=1_000),
        Backbone("convnext_nano", 2.44, 0.8, min_images=5_000),
        Backbone("resnet50", 4.09, 0.9, min_images=10_000),
        Backbone("vit_small_patch16_224", 4.60, 0.9, min_images=50_000),
        Backbone("convnext_tiny", 4.45, 0.8, min_images=20_000),
        Backbone("vit_base_patch16_224", 17.56, 0.9, min_images=200_000),
    )
)
# timm's unit-test models: tiny random architectures, never a product's answer, so not
# in the ladder; priced here because tests (and spec.search.models) may still name them.
TEST_BACKBONES: tuple[Backbone, ...] = (
    Backbone("test_convnext", 0.061, 0.25, max_images=50_000),
    Backbone("test_vit", 0.088, 0.25, max_images=50_000),
    Backbone("test_resnet", 0.20, 0.5, max_images=50_000),
)
# A model the table does not know is costed like a ResNet-50 until attempts report.
UNKNOWN_GMACS = 4.09

# Detection: whole detectors. The neck follows the backbone's channels, so a dense
# backbone of any size gets the 256-channel, 4-conv neck and head (about 5.6 GMACs at
# 224 px, 29 at 512): only EfficientNet-B0's 128-channel neck makes a cheap rung.
# At 512 px: 7.63, 38.77, 42.13, 51.36, 52.69 GMACs. Efficiency: per MAC on one CPU
# core the detectors train as fast as classifiers (ResNet-18 1.2x, EfficientNet-B0
# 0.5x a ResNet-18 classifier); CostModel.detection_overhead adds what a GPU loses.
DETECTION_BACKBONES: tuple[Backbone, ...] = _rising(
    (
        Backbone("efficientnet_b0", 1.466, 0.5),
        Backbone("resnet18", 7.446, 1.0, min_images=2_000),
        Backbone("convnext_nano", 8.089, 0.8, min_images=5_000),
        Backbone("resnet50", 9.855, 0.9, min_images=10_000),
        Backbone("convnext_tiny", 10.110, 0.8, min_images=20_000),
    )
)
# Measured too, never in the ladder: timm's test models (0.40 and 0.11 GMACs at 224 px)
# and architectures a catalog may hold for detection (their 128-channel necks: 7.2-7.6
# GMACs at 512 px).
DETECTION_TEST_BACKBONES: tuple[Backbone, ...] = (
    Backbone("test_convnext", 0.113, 0.25, max_images=50_000),
    Backbone("test_resnet", 0.404, 0.5, max_images=50_000),
)
DETECTION_MEASURED: tuple[Backbone, ...] = (
    Backbone("efficientnet_lite0", 1.465, 0.5),
    Backbone("tf_efficientnet_lite0", 1.465, 0.5),  # tailor-models' wheel sources
    Backbone("mobilenetv2_100", 1.379, 0.5),
    Backbone("resnet10t", 6.730, 1.0),
    Backbone("mobilenetv3_large_100", 5.828, 0.6),
)
# The 256-channel neck and head a backbone the table does not know most likely gets,
# added to its own GMACs; unknown models cost like a ResNet-50 detector.
DETECTION_NECK_GMACS = 5.63
DETECTION_UNKNOWN_GMACS = 9.855

_CLASSIFICATION = {b.name: b for b in (*BACKBONES, *TEST_BACKBONES)}
_DETECTION = {b.name: b for b in (*DETECTION_BACKBONES, *DETECTION_TEST_BACKBONES)} | {
    b.name: b for b in DETECTION_MEASURED
}


def ladder(task: Task = "classification") -> tuple[Backbone, ...]:
    """The backbones a search from scratch tries for a task, cheapest first."""
    return DETECTION_BACKBONES if task == "detection" else BACKBONES


def measured(name: str, task: Task = "classification") -> Backbone | None:
    """The table's entry for a timm model name, if it was measured for the task."""
    return (_DETECTION if task == "detection" else _CLASSIFICATION).get(name)


def find_backbone(name: str, task: Task = "classification") -> Backbone:
    """The table's entry, else a prior: a ResNet-50 (classifier or detector)."""
    unknown = DETECTION_UNKNOWN_GMACS if task == "detection" else UNKNOWN_GMACS
    return measured(name, task) or Backbone(name, unknown, 0.9)
