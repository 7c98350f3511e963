"""The evaluation report of an export: one self-contained report.html (figures and
thumbnails embedded as data URIs) and the same figures as PNG files beside it.

write_report takes plain data; collect.write_export_report gathers that data from a
trial (the best checkpoint's predictions on the evaluation split, the wrong images)."""

from pathlib import Path

from tailor_trainer.report.document import HTML_NAME, ReportData, compute
from tailor_trainer.report.html import FIGURES_FOLDER
from tailor_trainer.report.page import render

__all__ = ["FIGURES_FOLDER", "HTML_NAME", "ReportData", "write_report"]


def write_report(folder: Path, data: ReportData) -> list[Path]:
    """Writes folder/report.html (self-contained) and folder/report/*.png (the same
    figures as files); returns the paths written, the page last."""
    computed = compute(data)
    written = []
    (folder / FIGURES_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, png in computed.figures.items():
        path = folder / FIGURES_FOLDER / name
        path.write_bytes(png)
        written.append(path)
    page = folder / HTML_NAME
    page.write_text(render(data, computed), encoding="utf-8")
    written.append(page)
    return written
