"""The evaluation report of an export: one self-contained report.html (figures and
thumbnails embedded as data URIs) and the same figures as PNG files beside it.

write_report (classification, multilabel) and write_detection_report take plain data;
collect.write_export_report gathers that data from a trial (the best checkpoint's
predictions on the evaluation split, and the images the page shows)."""

from pathlib import Path

from tailor_trainer.report import detection_document, detection_page
from tailor_trainer.report.detection_document import DetectionReportData
from tailor_trainer.report.document import HTML_NAME, ReportData, compute
from tailor_trainer.report.html import FIGURES_FOLDER
from tailor_trainer.report.page import render

__all__ = [
    "FIGURES_FOLDER",
    "HTML_NAME",
    "DetectionReportData",
    "ReportData",
    "write_detection_report",
    "write_report",
]


def _write(folder: Path, figures: dict[str, bytes], html: str) -> list[Path]:
    """folder/report/*.png, then folder/report.html; the paths written, the page last."""
    written = []
    (folder / FIGURES_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        path = folder / FIGURES_FOLDER / name
        path.write_bytes(png)
        written.append(path)
    page = folder / HTML_NAME
    page.write_text(html, encoding="utf-8")
    written.append(page)
    return written


def write_report(folder: Path, data: ReportData) -> list[Path]:
    """Writes folder/report.html (self-contained) and folder/report/*.png (the same
    figures as files); returns the paths written, the page last."""
    computed = compute(data)
    return _write(folder, computed.figures, render(data, computed))


def write_detection_report(folder: Path, data: DetectionReportData) -> list[Path]:
    """The same for a detector: per-class AP, precision-recall curves, evaluation images
    with their true and predicted boxes, the search."""
    computed = detection_document.compute(data)
    return _write(folder, computed.figures, detection_page.render(data, computed))
