"""torchvision's MobileNetV2 (`torchvision.models.mobilenet_v2`, e.g. the ImageNet
checkpoint mobilenet_v2-b0353104.pth) onto timm's `mobilenetv2_100`.

torchvision keeps everything in `features`: 0 is the stem (conv, bn), 1 .. N the
inverted residual blocks, N+1 the head (conv, bn); `classifier.1` is the linear layer
(`classifier.0` is dropout). Block k is timm's k-th block. The first block has no
expansion (`conv.0` depthwise, `conv.1` project, `conv.2` bn); the others expand:

    torchvision       timm
    conv.0.0 / 0.1    conv_pw / bn1       (expand)
    conv.1.0 / 1.1    conv_dw / bn2       (depthwise)
    conv.2 / conv.3   conv_pwl / bn3      (project)

Batch-norm epsilon (1e-5), ReLU6 and symmetric padding are the same in both, so the
logits agree to float precision (tests/unit/catalog/test_mappings.py).
"""

import re
from collections.abc import Collection, Sequence

from tailor_catalog.errors import CatalogError

NOT_EXPANDING = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}
EXPANDING = {
    "conv.0.0": "conv_pw",
    "conv.0.1": "bn1",
    "conv.1.0": "conv_dw",
    "conv.1.1": "bn2",
    "conv.2": "conv_pwl",
    "conv.3": "bn3",
}
STEM = {"0": "conv_stem", "1": "bn1"}
HEAD = {"0": "conv_head", "1": "bn2"}

_FEATURE = re.compile(r"features\.(\d+)\.(.+)\.(\w+)")
_CLASSIFIER = re.compile(r"classifier\.1\.(\w+)")


def timm_keys(keys: Collection[str], blocks: Sequence[str]) -> dict[str, str]:
    features = {int(m[1]) for key in keys if (m := _FEATURE.fullmatch(key))}
    if features != set(range(len(blocks) + 2)):
        raise CatalogError(
            f"the checkpoint has {max(len(features) - 2, 0)} blocks (features.1..N), the "
            f"architecture {len(blocks)}: it is another MobileNetV2 width or not one at all"
        )
    head = len(blocks) + 1
    expanding = {int(m[1]) for key in keys if (m := _FEATURE.fullmatch(key)) and m[2] == "conv.3"}
    names: dict[str, str] = {}
    for key in keys:
        if feature := _FEATURE.fullmatch(key):
            number, module, tensor = int(feature[1]), feature[2], feature[3]
            if number == 0:
                table, prefix = STEM, ""
            elif number == head:
                table, prefix = HEAD, ""
            else:
                table = EXPANDING if number in expanding else NOT_EXPANDING
                prefix = blocks[number - 1] + "."
            if module not in table:
                raise CatalogError(f"{key}: not a key of torchvision's MobileNetV2")
            names[key] = f"{prefix}{table[module]}.{tensor}"
        elif classifier := _CLASSIFIER.fullmatch(key):
            names[key] = f"classifier.{classifier[1]}"
        else:
            raise CatalogError(f"{key}: not a key of torchvision's MobileNetV2")
    return names
