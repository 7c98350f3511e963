"""The detection report's figures: per-class AP bars and precision-recall curves
(matplotlib, on the report's style), and evaluation images with their true and
predicted boxes (torchvision's draw_bounding_boxes)."""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import font_manager
from matplotlib.figure import Figure
from PIL import Image, ImageOps
from torchvision.utils import draw_bounding_boxes

from tailor_trainer.detection.metrics import COCO_IOUS, ImageBoxes
from tailor_trainer.report.detection_stats import HIT, IGNORED, ClassRow, Matching, crowd_of
from tailor_trainer.report.figures import grouped_bars_png, report_style, short, to_png

BARS_UP_TO = 40  # classes the AP chart shows; beyond, the lowest AP ones
CURVES_UP_TO = 16  # classes with a precision-recall panel; beyond, the lowest AP ones
PANEL_COLUMNS = 4
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # pycocotools' recThrs
DRAWN_SIDE = 320  # pixels, the longer side of a drawn evaluation image
AP_COLOURS = {"AP": "#8172b3", "AP50": "#4c72b0", "AP75": "#dd8452"}
TRUE_COLOUR = "#2ca02c"  # a true box a drawn detection found
MISSED_COLOUR = "#f59e0b"  # a true box no drawn detection found
CROWD_COLOUR = "#9e9e9e"
HIT_COLOUR = "#1f5fbf"
FALSE_COLOUR = "#d62728"


def lowest_ap(rows: Sequence[ClassRow], limit: int) -> list[int]:
    """Class indices with a box, lowest AP first when there are more than `limit`, else
    every class with a box in class order."""
    present = [i for i, row in enumerate(rows) if row.ap is not None]
    if len(present) <= limit:
        return present
    return sorted(present, key=lambda i: (rows[i].ap or 0.0, i))[:limit]


def per_class_ap_png(rows: Sequence[ClassRow], classes: Sequence[str]) -> tuple[bytes, str]:
    """Horizontal grouped bars (AP over IoU 0.5:0.95, AP50, AP75) per class with a box."""
    chosen = lowest_ap(rows, BARS_UP_TO)
    present = sum(row.ap is not None for row in rows)
    title = "Per-class AP (IoU 0.5:0.95), AP50 and AP75"
    if len(chosen) < present:
        title = f"The {len(chosen)} classes with the lowest AP (of {present} with boxes)"
    values = {
        "AP": [rows[c].ap or 0.0 for c in chosen],
        "AP50": [rows[c].ap_50 or 0.0 for c in chosen],
        "AP75": [rows[c].ap_75 or 0.0 for c in chosen],
    }
    labels = [f"{short(classes[c])}  (boxes={rows[c].boxes})" for c in chosen]
    return grouped_bars_png(values, AP_COLOURS, labels, 0.26, "average precision", title), title


def precision_recall_png(
    precision: np.ndarray, rows: Sequence[ClassRow], classes: Sequence[str]
) -> tuple[bytes, str]:
    """One panel per class: pycocotools' interpolated precision at its 101 recall points,
    at IoU 0.5, at 0.75, and averaged over 0.5:0.95 (the area under each is its AP)."""
    chosen = lowest_ap(rows, CURVES_UP_TO)
    present = sum(row.ap is not None for row in rows)
    title = "Precision-recall per class"
    if len(chosen) < present:
        title = f"Precision-recall of the {len(chosen)} classes with the lowest AP (of {present})"
    at_50 = int(np.argmin(np.abs(COCO_IOUS - 0.5)))
    at_75 = int(np.argmin(np.abs(COCO_IOUS - 0.75)))
    columns = min(PANEL_COLUMNS, max(1, len(chosen)))
    lines = max(1, -(-len(chosen) // columns))
    with report_style():
        figure = Figure(figsize=(3.2 * columns + 0.4, 2.9 * lines + 0.9), layout="constrained")
        grid = figure.subplots(lines, columns, squeeze=False, sharex=True, sharey=True)
        for panel, axes in enumerate(grid.flat):
            if panel >= len(chosen):
                axes.set_visible(False)
                continue
            c = chosen[panel]
            cells = np.clip(precision[:, :, c], 0.0, None)
            axes.plot(RECALL_POINTS, cells[at_50], color=AP_COLOURS["AP50"], label="IoU 0.5")
            axes.plot(
                RECALL_POINTS,
                cells[at_75],
                color=AP_COLOURS["AP75"],
                linestyle="--",
                label="IoU 0.75",
            )
            axes.plot(
                RECALL_POINTS,
                cells.mean(axis=0),
                color=AP_COLOURS["AP"],
                linewidth=2.4,
                label="mean over 0.5:0.95",
            )
            axes.set_title(f"{short(classes[c], 22)}: AP {rows[c].ap or 0.0:.3f}", fontsize=10)
            axes.set_xlim(0, 1)
            axes.set_ylim(0, 1.03)
            axes.grid(True, color="#eeeeee")
            axes.set_axisbelow(True)
        for axes in grid[-1]:
            axes.set_xlabel("recall")
        for axes in grid[:, 0]:
            axes.set_ylabel("precision")
        handles, labels = grid.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
        figure.suptitle(title, fontweight="bold")
        return to_png(figure), title


def _font() -> str | None:
    try:
        return str(font_manager.findfont("DejaVu Sans", fallback_to_default=False))
    except ValueError:
        return None  # torchvision falls back to PIL's small built-in font


@dataclass(frozen=True)
class Picture:
    """An evaluation image to draw on: any copy of it (a smaller one will do) and the
    size of the original, whose pixels the boxes are in."""

    data: bytes  # PNG or JPEG
    width: int
    height: int


def draw_boxes(
    picture: Picture,
    image: ImageBoxes,
    matching: Matching,
    threshold: float,
    classes: Sequence[str],
) -> bytes:
    """A JPEG of the picture (upright, longer side DRAWN_SIDE) with its true boxes (green
    when found, amber when missed, crowd regions grey) and the detections at or above
    `threshold`, named and scored: blue when right at IoU 0.5, red when not."""
    with Image.open(io.BytesIO(picture.data)) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    scale = DRAWN_SIDE / max(picture.width, picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    pixels = torch.from_numpy(np.asarray(upright.resize(size, Image.Resampling.BILINEAR)).copy())
    canvas = pixels.permute(2, 0, 1).contiguous()
    shown = np.flatnonzero((image.scores >= threshold) & (matching.status != IGNORED))
    shown = shown[np.argsort(image.scores[shown], kind="stable")]  # the best drawn last, on top
    found = set(matching.truth[shown][matching.status[shown] == HIT].tolist())
    if len(image.true_boxes):
        colours = [
            CROWD_COLOUR if is_crowd else TRUE_COLOUR if i in found else MISSED_COLOUR
            for i, is_crowd in enumerate(crowd_of(image))
        ]
        boxes = torch.from_numpy(image.true_boxes * scale).float()
        canvas = draw_bounding_boxes(canvas, boxes, colors=colours, width=3)
    if len(shown):
        boxes = torch.from_numpy(image.boxes[shown] * scale).float()
        labels = [
            f"{short(classes[int(image.labels[i])], 18)} {image.scores[i]:.2f}" for i in shown
        ]
        colours = [HIT_COLOUR if matching.status[i] == HIT else FALSE_COLOUR for i in shown]
        canvas = draw_bounding_boxes(
            canvas,
            boxes,
            labels,
            colors=colours,
            width=2,
            font=_font(),
            font_size=12,
            label_colors="white",
            label_background_colors=colours,
            fill_labels=True,
        )
    buffer = io.BytesIO()
    Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
