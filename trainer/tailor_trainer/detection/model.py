"""FCOS on a timm backbone: torchvision's FCOS head and loss, a feature pyramid over the
backbone's stride 8/16/32 features with P6 and P7 (LastLevelP6P7), and no resizing or
normalising of its own (the data pipeline letterboxes and normalises).

Precision: only the convolutions (backbone, pyramid, head) run under autocast. The
points, box decoding, losses and NMS stay in float32: bf16 points would round
coordinates to a 4-pixel grid at 512-1023 px.

`dense` is the exportable core (boxes and scores of every point, no NMS);
`postprocess` is the one NMS every consumer uses: evaluation, and both predict backends.
"""

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import timm
import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import batched_nms, box_iou
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from tailor_trainer.errors import ConfigError

STRIDES = (8, 16, 32, 64, 128)  # P3..P7; each point's anchor is a square of its stride
SCORE_THRESHOLD = 0.05  # evaluation keeps what COCO's protocol would (FCOS infers at 0.2)
NMS_IOU = 0.6
MAX_DETECTIONS = 300
CANDIDATES = 1000  # x levels: the best (point, class) pairs considered for NMS
# Narrower boxes are dropped (torchvision's roi_heads uses the same 1e-2): an untrained
# head regresses distances of exactly 0 (its ReLU), and such empty boxes are never right,
# overlap nothing, so NMS keeps them all, and they made the export's own parity check
# fail (an empty box has IoU 0 with itself).
MIN_BOX_SIDE = 1e-2  # input pixels

Autocast = Callable[[], AbstractContextManager[object]]


def neck_size(backbone_channels: list[int]) -> tuple[int, int]:
    """(pyramid channels, head convolutions), scaled with the backbone: torchvision's
    256 channels and 4 convs cost ~30 GMACs at 512 px whatever the backbone, as much as
    a ResNet-50's whole detector. Channels are the power of two nearest to a quarter of
    the backbone's three levels together, between 32 and 256 (GroupNorm uses 32 groups)."""
    wanted = sum(backbone_channels) / 4
    channels = int(min(256, max(32, 2 ** round(math.log2(max(wanted, 1.0))))))
    convs = 4 if channels >= 256 else 3 if channels >= 128 else 2
    return channels, convs


class Detector(nn.Module):
    """images (N, 3, S, S), letterboxed and normalised -> losses (training) or the
    dense output (boxes (N, P, 4) x1y1x2y2 in input pixels, scores (N, P, C))."""

    def __init__(self, architecture: str, num_classes: int, drop_path: float = 0.0) -> None:
        super().__init__()
        if not timm.is_model(architecture):
            raise ConfigError(f"timm has no model named {architecture!r}")
        kwargs: dict[str, Any] = {"num_classes": 0}
        if drop_path:
            kwargs["drop_path_rate"] = drop_path
        self.architecture = architecture
        self.num_classes = num_classes
        self.backbone = timm.create_model(architecture, pretrained=False, **kwargs)
        info = getattr(self.backbone, "feature_info", None)
        if not info or not hasattr(self.backbone, "forward_intermediates"):
            raise ConfigError(f"{architecture} gives no multi-scale features for detection")
        found = {int(f["reduction"]): (i, int(f["num_chs"])) for i, f in enumerate(info)}
        if any(stride not in found for stride in (8, 16, 32)):
            raise ConfigError(f"{architecture} has no features at strides 8, 16 and 32")
        self.indices = [found[stride][0] for stride in (8, 16, 32)]
        channels_in = [found[stride][1] for stride in (8, 16, 32)]
        channels, convs = neck_size(channels_in)
        self.fpn = FeaturePyramidNetwork(
            channels_in, channels, extra_blocks=LastLevelP6P7(channels, channels)
        )
        self.head = FCOSHead(channels, 1, num_classes, num_convs=convs)
        self.box_coder = det_utils.BoxLinearCoder(normalize_by_size=True)
        self.center_sampling_radius = 1.5  # what FCOS.compute_loss reads
        self.autocast: Autocast = contextlib.nullcontext
        # For the optimizer's groups (tailor_trainer.optim): the neck and head are new,
        # they learn at `lr`; the backbone at lr * backbone_lr_scale.
        cfg = dict(getattr(self.backbone, "pretrained_cfg", {}) or {})
        cfg["classifier"] = ("fpn", "head")
        self.pretrained_cfg = cfg

    def prune_backbone(self) -> None:
        """Drops what the features do not use (final norm, head): unused weights would
        stall DDP. After the pretrained weights are loaded into the whole backbone."""
        prune = getattr(self.backbone, "prune_intermediate_layers", None)
        if prune is not None:
            prune(self.indices, prune_norm=False, prune_head=True)

    def features(self, images: Tensor) -> tuple[dict[str, Tensor], list[tuple[int, int]]]:
        """The head's outputs (float32) and each pyramid level's (height, width)."""
        with self.autocast():
            levels = self.backbone.forward_intermediates(  # type: ignore[operator]
                images, indices=self.indices, intermediates_only=True
            )
            pyramid = self.fpn(OrderedDict((str(i), x) for i, x in enumerate(levels)))
            outputs = self.head(list(pyramid.values()))
        shapes = [(int(level.shape[-2]), int(level.shape[-1])) for level in pyramid.values()]
        # Everything after the convolutions is float32.
        return {key: value.float() for key, value in outputs.items()}, shapes

    def forward(
        self, images: Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        outputs, shapes = self.features(images)
        points = grid_anchors(shapes, images.device)
        if targets is not None:
            per_level = [h * w for h, w in shapes]
            anchors = [points] * images.shape[0]
            losses: dict[str, Tensor] = FCOS.compute_loss(
                self,  # FCOS's matching reads only .head and .center_sampling_radius
                targets,
                outputs,
                anchors,
                per_level,
            )
            return losses["classification"] + losses["bbox_regression"] + losses["bbox_ctrness"]
        return self.decode(outputs, points, int(images.shape[-1]), int(images.shape[-2]))

    def decode(
        self, outputs: dict[str, Tensor], points: Tensor, width: int, height: int
    ) -> tuple[Tensor, Tensor]:
        batch = outputs["bbox_regression"].shape[0]
        anchors = points.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 4)
        boxes = self.box_coder.decode(outputs["bbox_regression"].reshape(-1, 4), anchors)
        boxes = boxes.reshape(batch, -1, 4)
        limit = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        scores = torch.sqrt(
            torch.sigmoid(outputs["cls_logits"]) * torch.sigmoid(outputs["bbox_ctrness"])
        )
        return boxes, scores


def grid_anchors(shapes: list[tuple[int, int]], device: torch.device) -> Tensor:
    """torchvision's AnchorGenerator for one square anchor per point of size = stride
    (FCOS's default), in float32 whatever the autocast: (points, 4) x1y1x2y2. Equal to
    torchvision's at sides that are multiples of 128; at others torchvision takes a
    level's stride as side // cells, ours are the levels' true strides."""
    levels = []
    for (height, width), stride in zip(shapes, STRIDES, strict=True):
        half = round(stride / 2)
        xs = torch.arange(width, dtype=torch.float32, device=device) * stride
        ys = torch.arange(height, dtype=torch.float32, device=device) * stride
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        x, y = x.reshape(-1), y.reshape(-1)
        levels.append(torch.stack([x - half, y - half, x + half, y + half], dim=1))
    return torch.cat(levels)


def postprocess(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float = SCORE_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
    nms_iou: float = NMS_IOU,
) -> list[dict[str, Tensor]]:
    """Per image: the (point, class) pairs above the threshold, the best CANDIDATES x 5
    of them, those with both sides at least MIN_BOX_SIDE, class-wise NMS, the best
    `max_detections`. One function for evaluation and
    both predict backends, so they can only differ by the dense outputs."""
    detections = []
    classes = scores.shape[-1]
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        flat = image_scores.reshape(-1)
        keep = torch.where(flat > score_threshold)[0]
        flat = flat[keep]
        top = min(CANDIDATES * len(STRIDES), flat.numel())
        flat, order = flat.topk(top)
        keep = keep[order]
        labels = keep % classes
        chosen = image_boxes[torch.div(keep, classes, rounding_mode="floor")]
        sides = chosen[:, 2:] - chosen[:, :2]
        sized = torch.where((sides >= MIN_BOX_SIDE).all(dim=1))[0]
        chosen, flat, labels = chosen[sized], flat[sized], labels[sized]
        kept = batched_nms(chosen, flat, labels, nms_iou)[:max_detections]
        detections.append({"boxes": chosen[kept], "scores": flat[kept], "labels": labels[kept]})
    return detections


__all__ = ["Detector", "box_iou", "grid_anchors", "neck_size", "postprocess"]
