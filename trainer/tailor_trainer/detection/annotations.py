"""The boxes of a detection COCO file, with the rules a box must keep.

Units are decided per file: Azure's COCO exports give `bbox` as fractions of the image
(every box inside [0, 1.5]), everything else in pixels. Boxes are returned in pixels.
A box more than a pixel outside its image is refused; within a pixel it is clipped.
Each problem names its image and annotation id, so a user can find it.
"""

import math
from dataclasses import dataclass
from typing import Any

from tailor_trainer.problems import Problems

# A relative file never holds a coordinate past this; a pixel file always does (a box
# within 1.5 px of the origin is no object anyone labels).
RELATIVE_LIMIT = 1.5
OUTSIDE_TOLERANCE = 1.0  # pixels a box may stick out of its image (then it is clipped)


@dataclass(frozen=True)
class Box:
    """A detection annotation in pixels of the (EXIF-corrected) image, clipped to it."""

    id: int  # the annotation's id
    label: int  # class index
    x: float
    y: float
    w: float
    h: float
    crowd: bool = False  # iscrowd: ignored in training, a region to ignore in evaluation


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def image_size(item: dict[str, Any]) -> tuple[int, int] | None:
    """The declared (width, height) when both are positive integers."""
    width: Any = item.get("width")
    height: Any = item.get("height")
    if not (_is_number(width) and _is_number(height)):
        return None
    if width != int(width) or height != int(height) or width <= 0 or height <= 0:
        return None
    return int(width), int(height)


def _raw_box(item: dict[str, Any]) -> list[float] | None:
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        return None
    values = [float(v) for v in bbox]
    return values if all(math.isfinite(v) for v in values) else None


def relative_units(items: list[dict[str, Any]]) -> bool:
    """Whether the file's boxes are fractions of the image (Azure's COCO) not pixels."""
    boxes = [box for item in items if (box := _raw_box(item)) is not None]
    if not boxes:
        return False
    return all(max(x + w, y + h, x, y) <= RELATIVE_LIMIT for x, y, w, h in boxes)


def parse_box(
    item: dict[str, Any],
    label: int,
    size: tuple[int, int],
    relative: bool,
    where: str,
    problems: Problems,
) -> Box | None:
    """The annotation's box in pixels, clipped to its image; None (recorded) if refused."""
    name = f"{where}: annotation {item['id']} on image {item['image_id']}"
    raw = _raw_box(item)
    if raw is None:
        problems.error("bad_box", f"{name}: 'bbox' must be four finite numbers [x, y, w, h]")
        return None
    x, y, w, h = raw
    if w <= 0 or h <= 0:
        problems.error("bad_box", f"{name}: bbox {raw} has a width or height that is not positive")
        return None
    width, height = size
    if relative:
        x, y, w, h = x * width, y * height, w * width, h * height
    left, top, right, bottom = x, y, x + w, y + h
    outside = max(-left, -top, right - width, bottom - height)
    if outside > OUTSIDE_TOLERANCE:
        units = "relative" if relative else "pixel"
        problems.error(
            "box_outside_image",
            f"{name}: bbox {raw} ({units} units) is {outside:.1f} px outside the "
            f"{width}x{height} image",
        )
        return None
    left, top = max(0.0, left), max(0.0, top)
    right, bottom = min(float(width), right), min(float(height), bottom)
    if right - left <= 0 or bottom - top <= 0:
        problems.error("bad_box", f"{name}: bbox {raw} is empty inside the image")
        return None
    crowd = bool(item.get("iscrowd", 0))
    return Box(item["id"], label, left, top, right - left, bottom - top, crowd)
