"""RetinaNet, the second dense head (`detector: retinanet`): torchvision's RetinaNetHead
(focal loss for classes, L1 on box deltas) with GroupNorm, on the same backbone and
pyramid as FCOS. Its anchors are torchvision's defaults: at each point of P3..P7, three
sizes (32 to 512 px, 2^(1/3) apart) times three aspect ratios; an anchor is matched to
a true box at IoU >= 0.5, is background below 0.4 and ignored between, and every true
box keeps its best anchors (low-quality matches allowed), as torchvision's RetinaNet.

Anchors are built in float32 whatever the autocast, like FCOS's points.
"""

from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead

ANCHOR_SIZES = tuple(
    (x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512)
)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHORS_PER_POINT = len(ASPECT_RATIOS) * 3
_GENERATOR = AnchorGenerator(ANCHOR_SIZES, (ASPECT_RATIOS,) * len(ANCHOR_SIZES))


def retinanet_head(channels: int, classes: int, convs: int) -> RetinaNetHead:
    """torchvision's head with GroupNorm, its four convolutions per branch cut to
    `convs`: the neck scales with the backbone, so does the head (see neck_size)."""
    head = RetinaNetHead(channels, ANCHORS_PER_POINT, classes, norm_layer=partial(nn.GroupNorm, 32))
    for branch in (head.classification_head, head.regression_head):
        branch.conv = nn.Sequential(*list(branch.conv)[:convs])
    return head


def matcher() -> det_utils.Matcher:
    return det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)


def anchors(
    shapes: list[tuple[int, int]], strides: tuple[int, ...], device: torch.device
) -> Tensor:
    """(points x ANCHORS_PER_POINT, 4) x1y1x2y2, point-major as the head's outputs:
    torchvision's AnchorGenerator's cell anchors moved over each level's grid by its
    true stride (torchvision takes side // cells, the same at multiples of 128)."""
    levels = []
    for (height, width), stride, sizes in zip(shapes, strides, ANCHOR_SIZES, strict=True):
        cell = _GENERATOR.generate_anchors(
            list(sizes), list(ASPECT_RATIOS), dtype=torch.float32, device=device
        )
        xs = torch.arange(width, dtype=torch.float32, device=device) * stride
        ys = torch.arange(height, dtype=torch.float32, device=device) * stride
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([x, y, x, y], dim=-1).reshape(-1, 1, 4)
        levels.append((shifts + cell.reshape(1, -1, 4)).reshape(-1, 4))
    return torch.cat(levels)


def loss(
    detector: nn.Module, targets: list[dict[str, Tensor]], outputs: dict[str, Tensor], grid: Tensor
) -> Tensor:
    """torchvision's RetinaNet loss: it reads only .head and .proposal_matcher."""
    losses: dict[str, Tensor] = RetinaNet.compute_loss(
        detector,
        targets,
        outputs,
        [grid] * len(targets),
    )
    return losses["classification"] + losses["bbox_regression"]


def decode(head: RetinaNetHead, outputs: dict[str, Tensor], grid: Tensor) -> tuple[Tensor, Tensor]:
    """(boxes (N, P, 4) unclipped, scores (N, P, C) = sigmoid of the class logits)."""
    deltas = outputs["bbox_regression"]
    batch = deltas.shape[0]
    expanded = grid.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 4)
    boxes = head.regression_head.box_coder.decode_single(deltas.reshape(-1, 4), expanded)
    return boxes.reshape(batch, -1, 4), torch.sigmoid(outputs["cls_logits"])
