"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas.

No pyplot: each figure is a Figure on its own FigureCanvasAgg, so nothing touches
matplotlib's global backend or figure registry. Class names come from users: math
text parsing is off, so a name with `$` in it is drawn as written.
"""

import io
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tailor_trainer.report.stats import PerClass, Reliability

DPI = 100
MAX_LABEL = 28  # characters of a class name on an axis; the page's tables show all of it
ANNOTATE_UP_TO = 20  # classes up to which the confusion matrix prints its counts
LABEL_UP_TO = 60  # classes up to which the confusion matrix names its rows and columns
BARS_UP_TO = 40  # classes the per-class chart shows; beyond, the lowest F1 ones

STYLE = {
    "text.parse_math": False,
    "font.family": "DejaVu Sans",  # ships with matplotlib: no system or network font
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
}
METRIC_COLOURS = {
    "precision": "#4c72b0",
    "recall": "#dd8452",
    "F1": "#55a868",
    "AP": "#8172b3",
}


@contextmanager
def report_style() -> Iterator[None]:
    with rc_context(cast(Any, STYLE)), warnings.catch_warnings():
        # A class name in a script DejaVu lacks draws boxes; the page shows it right.
        warnings.filterwarnings("ignore", message=".*Glyph.*missing.*")
        yield


def to_png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()


def short(name: str, limit: int = MAX_LABEL) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_matrix_png(matrix: np.ndarray, classes: Sequence[str]) -> bytes:
    """Counts in the cells, coloured by the share of each true class (row)."""
    count = len(classes)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    side = min(16.0, max(5.0, 1.8 + 0.42 * count))
    with report_style():
        figure = Figure(figsize=(side + 1.2, side))
        axes = figure.add_subplot()
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03)
        colorbar.set_label("share of the true class")
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        axes.set_title(
            "Confusion matrix (counts)"
            if count <= ANNOTATE_UP_TO
            else f"Confusion matrix ({count} classes, coloured by share of the true class)"
        )
        if count <= LABEL_UP_TO:
            size = 10 if count <= 20 else 8 if count <= 40 else 6
            labels = [short(name) for name in classes]
            axes.set_xticks(range(count), labels, rotation=45, ha="right", fontsize=size)
            axes.set_yticks(range(count), labels, fontsize=size)
            axes.tick_params(axis="x", labelrotation=45)
            for label in axes.get_xticklabels():
                label.set_rotation_mode("anchor")
        else:
            axes.set_xticks([])
            axes.set_yticks([])
        if count <= ANNOTATE_UP_TO:
            size = 10 if count <= 10 else 8
            for (row, column), value in np.ndenumerate(matrix):
                if value == 0 and row != column:
                    continue
                colour = "white" if shares[row, column] > 0.55 else "#222222"
                axes.text(
                    column, row, str(value), ha="center", va="center", color=colour, fontsize=size
                )
        for spine in axes.spines.values():
            spine.set_visible(False)
        return to_png(figure)


def per_class_png(stats: PerClass, classes: Sequence[str]) -> tuple[bytes, str]:
    """Horizontal grouped bars (precision, recall, F1, AP) per class; and its title."""
    chosen = np.arange(len(classes))
    title = "Per-class precision, recall, F1 and AP"
    if len(classes) > BARS_UP_TO:
        chosen = np.argsort(stats.f1, kind="stable")[:BARS_UP_TO]
        title = f"The {BARS_UP_TO} classes with the lowest F1 (of {len(classes)})"
    values = {
        "precision": stats.precision[chosen],
        "recall": stats.recall[chosen],
        "F1": stats.f1[chosen],
        "AP": np.nan_to_num(stats.average_precision[chosen], nan=0.0),
    }
    labels = [f"{short(classes[int(c)])}  (n={int(stats.support[c])})" for c in chosen]
    return grouped_bars_png(values, METRIC_COLOURS, labels, 0.2, "score", title), title


def grouped_bars_png(
    values: Mapping[str, Sequence[float] | np.ndarray],
    colours: Mapping[str, str],
    labels: Sequence[str],
    height: float,
    xlabel: str,
    title: str,
) -> bytes:
    """Horizontal bars in [0, 1], one group per label (the first at the top), one bar
    per entry of `values`, centred on the label, the legend beside the axes."""
    count = max(1, len(labels))
    centre = (len(values) - 1) / 2
    with report_style():
        figure = Figure(figsize=(9.0, max(3.0, 1.4 + 0.62 * count)))
        axes = figure.add_subplot()
        positions = np.arange(len(labels))
        for offset, (name, heights) in enumerate(values.items()):
            axes.barh(
                positions + (offset - centre) * height,
                heights,
                height=height,
                color=colours[name],
                label=name,
            )
        axes.set_yticks(positions, labels)
        axes.set_ylim(count - 0.5, -0.5)  # first label at the top
        axes.set_xlim(0, 1.02)
        axes.set_xlabel(xlabel)
        axes.xaxis.grid(True, color="#dddddd")
        axes.set_axisbelow(True)
        axes.set_title(title)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return to_png(figure)


def reliability_png(bins: Reliability) -> bytes:
    """Accuracy against confidence per bin over the diagonal, and the images per bin."""
    with report_style():
        figure = Figure(figsize=(7.0, 7.0))
        top, bottom = figure.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
        )
        width = float(bins.edges[1] - bins.edges[0])
        lefts = bins.edges[:-1]
        filled = bins.counts > 0
        top.plot([0, 1], [0, 1], linestyle="--", color="#888888", label="perfect calibration")
        top.bar(
            lefts[filled],
            bins.accuracy[filled],
            width=width,
            align="edge",
            color="#4c72b0",
            edgecolor="white",
            label="accuracy",
        )
        gap_bottom = np.minimum(bins.accuracy[filled], bins.confidence[filled])
        gap = np.abs(bins.accuracy[filled] - bins.confidence[filled])
        top.bar(
            lefts[filled],
            gap,
            bottom=gap_bottom,
            width=width,
            align="edge",
            color="#dd8452",
            alpha=0.35,
            edgecolor="#dd8452",
            hatch="//",
            label="gap to mean confidence",
        )
        top.scatter(
            lefts[filled] + width / 2,
            bins.confidence[filled],
            color="#dd8452",
            zorder=3,
            s=18,
            label="mean confidence",
        )
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.set_title(f"Reliability: ECE {bins.ece:.4f} ({len(bins.counts)} bins)")
        top.legend(loc="upper left", frameon=False)
        top.grid(True, color="#eeeeee")
        top.set_axisbelow(True)
        bottom.bar(
            lefts, bins.counts, width=width, align="edge", color="#999999", edgecolor="white"
        )
        bottom.set_ylabel("images")
        bottom.set_xlabel("top-1 confidence")
        bottom.set_ylim(0, max(1, int(bins.counts.max())) * 1.15)
        return to_png(figure)


@dataclass(frozen=True)
class TrialPoint:
    name: str
    gpu_seconds: float
    metric: float
    kind: str  # "promoted", "stopped early" or "other"
    exported: bool


KIND_STYLE = {  # marker, colour, area
    "promoted": ("^", "#2a9d4b", 70.0),
    "stopped early": ("x", "#c0392b", 50.0),
    "other": ("o", "#4c72b0", 45.0),
}


def search_png(points: Sequence[TrialPoint], metric_name: str) -> bytes:
    """Each trial's metric against its charged GPU-seconds; the exported one starred."""
    with report_style():
        figure = Figure(figsize=(9.0, 5.0))
        axes = figure.add_subplot()
        handles = []
        for kind, (marker, colour, area) in KIND_STYLE.items():
            chosen = [p for p in points if p.kind == kind]
            if not chosen:
                continue
            x, y = [p.gpu_seconds for p in chosen], [p.metric for p in chosen]
            axes.scatter(x, y, marker=marker, color=colour, s=area, zorder=3)
            label = f"{kind} ({len(chosen)})"
            handles.append(Line2D([], [], linestyle="", marker=marker, color=colour, label=label))
        for point in (p for p in points if p.exported):
            axes.scatter(
                [point.gpu_seconds],
                [point.metric],
                marker="*",
                s=420,
                facecolors="none",
                edgecolors="#f1a208",
                linewidths=2.2,
                zorder=4,
            )
            axes.annotate(
                short(point.name, 40),
                (point.gpu_seconds, point.metric),
                xytext=(12, 10),
                textcoords="offset points",
                fontsize=9,
                color="#7a5200",
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="",
                    marker="*",
                    markersize=16,
                    markerfacecolor="none",
                    markeredgecolor="#f1a208",
                    markeredgewidth=2,
                    label="exported",
                )
            )
        seconds = [p.gpu_seconds for p in points if p.gpu_seconds > 0]
        if seconds and max(seconds) / min(seconds) > 50:
            axes.set_xscale("log")
        else:
            axes.set_xlim(left=0)
        metrics = [p.metric for p in points]
        if metrics:
            low, high = min(metrics), max(metrics)
            margin = max(0.02, (high - low) * 0.12)
            axes.set_ylim(low - margin, high + margin)
        axes.set_xlabel("charged GPU-seconds (calibrated)")
        axes.set_ylabel(metric_name)
        axes.set_title(f"Search: {metric_name} against GPU-seconds")
        axes.grid(True, color="#eeeeee")
        axes.set_axisbelow(True)
        axes.legend(handles=handles, loc="lower right", frameon=True, framealpha=0.9)
        return to_png(figure)


def dimensions(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
