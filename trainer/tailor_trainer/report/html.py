"""The pieces every report page is built from: the inline style, formatted numbers,
cells that carry their raw value (data-metric / data-value, for tests and tools), and
figures as data URIs with a pointer to their PNG file beside the page.

Every string that comes from a user goes through html.escape before it gets here or here.
"""

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Protocol

from tailor_contract import SearchTrial
from tailor_trainer.report.figures import dimensions

FIGURES_FOLDER = "report"

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 1px solid #d8dce1; }
h3 { font-size: 16px; margin: 18px 0 8px; }
section, header { background: #fff; border: 1px solid #d8dce1; border-radius: 8px;
  padding: 18px 22px; margin: 0 0 20px; }
.subtitle { color: #57606a; margin: 0 0 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.primary { font-size: 22px; font-weight: 600; }
code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #f1f3f5;
  padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
nav { margin: 0 0 20px; display: flex; flex-wrap: wrap; gap: 8px; }
nav a { background: #fff; border: 1px solid #d8dce1; border-radius: 16px; padding: 3px 12px;
  color: #0b5cad; text-decoration: none; font-size: 14px; }
figure.chart { margin: 8px 0 12px; }
figure.chart img { display: block; max-width: 100%; height: auto; }
figure.chart figcaption { color: #57606a; font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tfoot td { font-weight: 600; background: #f6f8fa; }
tr.exported td { background: #fff6dd; }
.note { color: #57606a; font-size: 14px; }
.skipped { background: #f6f8fa; border-left: 4px solid #b0b7c0; padding: 8px 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.mistake { border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px; margin: 0;
  background: #fff; font-size: 13px; }
.mistake img, .mistake .missing { display: block; width: 128px; height: 128px;
  object-fit: contain; margin: 0 auto 6px; background: #eef0f2; image-rendering: auto; }
.mistake .missing { display: flex; align-items: center; justify-content: center;
  color: #57606a; text-align: center; font-size: 12px; }
.mistake figcaption { overflow-wrap: anywhere; }
.wrong { color: #b42318; }
.right { color: #1a7f37; }
.muted { color: #57606a; }
.none { font-size: 16px; color: #1a7f37; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0b5cad; }
footer { color: #57606a; font-size: 13px; text-align: center; }
"""


def number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def percent(value: float) -> str:
    return f"{value:.1%}"


def data_uri(image: bytes) -> str:
    kind = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{kind};base64,{base64.b64encode(image).decode('ascii')}"


def img(image: bytes, alt: str, attributes: str = "") -> str:
    size = ""
    if image.startswith(b"\x89PNG"):
        width, height = dimensions(image)
        size = f' width="{width}" height="{height}"'
    return f'<img src="{data_uri(image)}" alt="{escape(alt)}"{size}{attributes}>'


def chart(figures: Mapping[str, bytes], name: str, alt: str, caption: str = "") -> str:
    png = figures.get(name)
    if png is None:
        return ""
    link = f"{FIGURES_FOLDER}/{name}"
    note = f"{caption} " if caption else ""
    return (
        f'<figure class="chart" id="figure-{name.removesuffix(".png")}">{img(png, alt)}'
        f"<figcaption>{escape(note)}Also beside this page as <code>{escape(link)}</code>."
        "</figcaption></figure>"
    )


def rows(rows: Iterable[Sequence[str]]) -> str:
    return "".join("<tr>" + "".join(row) + "</tr>" for row in rows)


def td(text: str, css: str = "", attributes: str = "") -> str:
    """A cell of already escaped or formatted text."""
    klass = f' class="{css}"' if css else ""
    return f"<td{klass}{attributes}>{text}</td>"


def num(value: float | None, metric: str = "", column: int | None = None) -> str:
    attributes = ""
    if metric:
        raw = "" if value is None or math.isnan(value) else repr(float(value))
        attributes = f' data-metric="{metric}" data-value="{raw}"'
        if column is not None:
            attributes += f' data-class="{column}"'
    return td(number(value), "num", attributes)


def page(model: str, sections: Sequence[tuple[str, str, str]], css: str = "") -> str:
    """The self-contained page: the header section first, then a navigation bar over
    (anchor, title, html) sections, in order. `css` adds to the shared style."""
    header, *rest = sections
    navigation = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title, _ in rest)
    body = header[2] + f"<nav>{navigation}</nav>" + "".join(html for _, _, html in rest)
    title = escape(f"Evaluation report: {model}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}{css}</style></head>"
        f"<body><main>{body}<footer>Written by tailor-train; the figures are also PNG files "
        f"in <code>{FIGURES_FOLDER}/</code> beside this page.</footer></main></body></html>\n"
    )


class Summarised(Protocol):
    """What the summary at the top of every report reads from its report's data."""

    @property
    def model(self) -> str: ...
    @property
    def classes(self) -> Sequence[str]: ...
    @property
    def primary_metric(self) -> str: ...
    @property
    def dataset_digest(self) -> str: ...
    @property
    def gpu_seconds(self) -> float | None: ...
    @property
    def trial(self) -> str | None: ...
    @property
    def step(self) -> int | None: ...
    @property
    def search(self) -> Sequence[SearchTrial]: ...
    @property
    def created(self) -> str: ...


def summary(
    data: Summarised,
    task: str,
    metrics: Mapping[str, float],
    names: Mapping[str, str],
    evaluated: str,
    subtitle: str,
    note: str = "",
) -> str:
    """The report's header: the facts (model, task, classes, primary metric, GPU-seconds,
    `evaluated`: what was evaluated), then every metric under its display name."""
    value = metrics.get(data.primary_metric)
    classes = ", ".join(escape(name) for name in data.classes)
    if len(data.classes) > 12:
        classes = f"<details><summary>show all</summary>{classes}</details>"
    facts = [
        ("model", f"<code>{escape(data.model)}</code>"),
        ("task", escape(task)),
        ("classes", f"{len(data.classes)} {classes}"),
        ("dataset digest", f"<code>{escape(data.dataset_digest or 'unknown')}</code>"),
        (
            "primary metric",
            f'<span class="primary" id="primary-metric" data-metric="{escape(data.primary_metric)}"'
            f' data-value="{"" if value is None else repr(value)}">'
            f"{escape(names.get(data.primary_metric, data.primary_metric))}: "
            f"{number(value)}</span>",
        ),
        (
            "GPU-seconds spent",
            "unknown"
            if data.gpu_seconds is None
            else f'<span id="gpu-seconds">{data.gpu_seconds:,.1f}</span> calibrated GPU-seconds '
            "(the exported trial, up to its exported checkpoint)",
        ),
        ("evaluation images", evaluated),
    ]
    if data.trial:
        facts.append(("trial", escape(data.trial)))
    if data.step is not None:
        facts.append(("checkpoint step", f"{data.step:,}"))
    if data.search:
        charged = sum(trial.charged_gpu_seconds for trial in data.search)
        facts.append(
            (
                "search",
                f"{len(data.search)} trials, {charged:,.1f} GPU-seconds charged "
                "when this attempt started",
            )
        )
    facts.append(("created", escape(data.created)))
    listing = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    table = rows(
        [f"<th>{escape(names.get(name, name))}</th>", num(value, name)]
        for name, value in metrics.items()
    )
    return (
        '<header id="summary"><h1>Evaluation report</h1>'
        f'<p class="subtitle">{subtitle}</p><dl class="facts">{listing}</dl>'
        f'<details open><summary>every metric</summary><table id="metrics">{table}</table>'
        f"{note}</details></header>"
    )
