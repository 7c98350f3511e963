"""The search's trials in a report: the table rows (best first, the exported trial
carrying this export's metric and GPU-seconds), its figure and its section. One home for
every task's report."""

from collections.abc import Mapping, Sequence
from html import escape

from tailor_contract import SearchTrial
from tailor_trainer.report import figures
from tailor_trainer.report.figures import TrialPoint
from tailor_trainer.report.html import chart, number, td

Rows = list[tuple[SearchTrial, bool]]  # (trial as shown, is the exported one)


def search_kind(trial: SearchTrial) -> str:
    if trial.promotions > 0:
        return "promoted"
    if trial.state.lower() == "stopped" or "early" in trial.ended.lower():
        return "stopped early"
    return "other"


def search_rows(
    search: Sequence[SearchTrial],
    exported_trial: str | None,
    model: str,
    gpu_seconds: float | None,
    value: float | None,
) -> list[tuple[SearchTrial, bool]]:
    """The search's trials, best first; the exported one carries this export's metric and
    GPU-seconds (the list was taken when its attempt started)."""
    rows: list[tuple[SearchTrial, bool]] = []
    seen = False
    for trial in search:
        exported = exported_trial is not None and trial.name == exported_trial
        if exported:
            seen = True
            trial = trial.model_copy(
                update={
                    "metric": value if value is not None else trial.metric,
                    "charged_gpu_seconds": max(trial.charged_gpu_seconds, gpu_seconds or 0.0),
                }
            )
        rows.append((trial, exported))
    if search and exported_trial is not None and not seen:
        rows.append(
            (
                SearchTrial(
                    name=exported_trial,
                    model=model,
                    state="Running",
                    metric=value,
                    charged_gpu_seconds=gpu_seconds or 0.0,
                    ended="exporting",
                ),
                True,
            )
        )
    rows.sort(key=lambda row: (row[0].metric is None, -(row[0].metric or 0.0)))
    return rows


def search_view(
    search: Sequence[SearchTrial],
    exported_trial: str | None,
    model: str,
    gpu_seconds: float | None,
    metric_name: str,
    value: float | None,
) -> tuple[Rows, int, bytes | None]:
    """(rows, trials with no metric yet, the figure of the others or None)."""
    rows = search_rows(search, exported_trial, model, gpu_seconds, value)
    points = [
        TrialPoint(
            trial.name, trial.charged_gpu_seconds, trial.metric, search_kind(trial), exported
        )
        for trial, exported in rows
        if trial.metric is not None
    ]
    png = figures.search_png(points, metric_name) if points else None
    return rows, len(rows) - len(points), png


def _search_row(trial: SearchTrial, exported: bool) -> str:
    name = escape(trial.name) + (" <strong>(exported)</strong>" if exported else "")
    css = ' class="exported"' if exported else ""
    cells = [
        td(name),
        td(f"<code>{escape(trial.model)}</code>"),
        td(escape(trial.recipe)),
        td(escape(trial.state)),
        td(number(trial.metric), "num"),
        td(f"{trial.charged_gpu_seconds:,.1f}", "num"),
        td(str(trial.promotions), "num"),
        td(escape(trial.ended)),
    ]
    return f'<tr{css} data-kind="{escape(search_kind(trial))}">{"".join(cells)}</tr>'


def search_section(
    search: Rows, unplotted_count: int, pngs: Mapping[str, bytes], primary_metric: str
) -> str:
    if not search:
        return (
            '<section id="search"><h2>Search</h2><p class="note">This attempt was given no '
            "search trials (a trial run on its own).</p></section>"
        )
    rows = "".join(_search_row(trial, exported) for trial, exported in search)
    unplotted = (
        f" {unplotted_count} trial(s) with no metric yet are in the table only."
        if unplotted_count
        else ""
    )
    figure = chart(
        pngs,
        "search.png",
        "the search's trials: metric against charged GPU-seconds",
        "Triangles: promoted trials; crosses: stopped early; circles: the others; the star is "
        f"the exported trial.{unplotted}",
    )
    return (
        '<section id="search"><h2>Search</h2>'
        f'<p class="note">The search\'s trials when this attempt started, best '
        f"{escape(primary_metric)} first. The exported trial shows this export's metric "
        f"and GPU-seconds.</p>{figure}"
        '<table id="search-table"><thead><tr><th>trial</th><th>model</th><th>recipe</th>'
        '<th>state</th><th class="num">metric</th><th class="num">charged GPU-s</th>'
        '<th class="num">promotions</th><th>why it ended</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )
