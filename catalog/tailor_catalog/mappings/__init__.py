"""Key mappings from other checkpoint layouts onto timm's names.

Each layout is a pure function from the checkpoint's keys (and the target model's
block names, in order) to timm's keys: one-to-one, by name, never by position in the
file, so a checkpoint whose blocks are stored out of order still maps right. The
mapped state dict must then load into `timm.create_model(arch)` with strict=True.
"""

from collections.abc import Callable, Collection, Iterable, Sequence

from tailor_catalog.errors import CatalogError
from tailor_catalog.mappings import efficientnet_pytorch, torchvision_mobilenetv2

# source keys, timm block names -> {source key: timm key}
KeyMapping = Callable[[Collection[str], Sequence[str]], dict[str, str]]


def _same_keys(keys: Collection[str], blocks: Sequence[str]) -> dict[str, str]:
    """A timm checkpoint: the keys already match."""
    return {key: key for key in keys}


LAYOUTS: dict[str, KeyMapping] = {
    "timm": _same_keys,
    "efficientnet-pytorch": efficientnet_pytorch.timm_keys,
    "torchvision-mobilenetv2": torchvision_mobilenetv2.timm_keys,
}


def block_names(stages: Iterable[Iterable[object]]) -> list[str]:
    """timm's names of a model's blocks in forward order: blocks.<stage>.<index>."""
    return [
        f"blocks.{stage}.{index}"
        for stage, blocks in enumerate(stages)
        for index, _ in enumerate(blocks)
    ]


def key_mapping(layout: str, keys: Collection[str], blocks: Sequence[str]) -> dict[str, str]:
    """{source key: timm key} for a layout; CatalogError when the keys do not follow it
    or two keys would land on one name."""
    try:
        mapping = LAYOUTS[layout]
    except KeyError:
        known = ", ".join(sorted(LAYOUTS))
        raise CatalogError(f"unknown layout {layout!r} (known: {known})") from None
    names = mapping(keys, blocks)
    seen: dict[str, str] = {}
    for source, target in names.items():
        if target in seen:
            raise CatalogError(
                f"layout {layout}: keys {seen[target]!r} and {source!r} both map to {target!r}"
            )
        seen[target] = source
    return names
