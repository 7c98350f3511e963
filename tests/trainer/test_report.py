"""The evaluation report: rendered in a real browser, its numbers held against the
trainer's metrics, and written by a real run into its export."""

import io
import json
import logging
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from tailor_contract import AttemptResult, ExitCode, SearchTrial
from tailor_trainer.cli import main
from tailor_trainer.metrics import (
    ECE_BINS,
    classification_metrics,
    expected_calibration_error,
    multilabel_metrics,
)
from tailor_trainer.report import ReportData, write_report
from tailor_trainer.report import collect as report_collect
from tailor_trainer.report.stats import mistakes, reliability
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write
from tests.trainer.browser import distinct_colours, render

TRICKY = 'owl <b>&"'
CLASSES = ["cat", "dog", TRICKY, "a-rather-long-class-name-for-the-axes", "$x$ not math"]
SCREENSHOT = Path("/tmp/report-screenshot.png")


def _probabilities(truth: np.ndarray, classes: int, seed: int, wrong: float) -> np.ndarray:
    """Softmax scores that favour the truth except on about `wrong` of the images."""
    generator = np.random.default_rng(seed)
    logits = generator.normal(0.0, 1.0, (len(truth), classes))
    right = generator.random(len(truth)) >= wrong
    logits[np.arange(len(truth)), truth] += np.where(right, 3.0, -1.0)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def _thumbnail(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _search() -> list[SearchTrial]:
    return [
        SearchTrial(name="trial-0", model="resnet18", state="Succeeded", metric=0.71,
                    charged_gpu_seconds=120, promotions=2, ended="completed"),
        SearchTrial(name="trial-1", model="resnet18", recipe="linear-probe", state="Succeeded",
                    metric=0.52, charged_gpu_seconds=30, ended="stopped early"),
        SearchTrial(name="trial-2", model="vit_tiny", state="Succeeded", metric=0.64,
                    charged_gpu_seconds=45, promotions=1, ended="completed"),
        SearchTrial(name="trial-3 <i>", model="convnext_atto", state="Running",
                    charged_gpu_seconds=200, attempts=2, promotions=1),
        SearchTrial(name="trial-4", model="vit_tiny", state="Failed",
                    charged_gpu_seconds=12, ended="diverged"),
    ]  # fmt: skip


def _classification(count: int = 80, wrong: float = 0.25) -> ReportData:
    truth = np.arange(count) % len(CLASSES)
    scores = _probabilities(truth, len(CLASSES), seed=3, wrong=wrong)
    shown = [m.index for m in mistakes(scores, truth, multilabel=False)]
    # Every wrong image has a thumbnail but one, which shows as "image unavailable".
    thumbnails = {index: _thumbnail((40 * (index % 6), 90, 200)) for index in shown[1:]}
    return ReportData(
        model="resnet18",
        task="classification",
        classes=CLASSES,
        probabilities=scores,
        targets=truth,
        primary_metric="top1_accuracy",
        dataset_digest="sha256:" + "ab" * 32,
        gpu_seconds=212.5,
        trial="trial-3 <i>",
        step=120,
        search=_search(),
        thumbnails=thumbnails,
        image_names=[f"#{i + 1} image-{i:04d}.jpg" for i in range(count)],
    )


def _multilabel(count: int = 60) -> ReportData:
    generator = np.random.default_rng(5)
    truth = (generator.random((count, 4)) < 0.4).astype(np.int64)
    scores = np.clip(0.7 * truth + generator.normal(0.15, 0.2, truth.shape), 0.0, 1.0)
    return ReportData(
        model="test_vit",
        task="multilabel",
        classes=["sky", "tree", TRICKY, "car"],
        probabilities=scores,
        targets=truth,
        primary_metric="average_precision_macro",
        gpu_seconds=40.0,
        threshold=0.5,
        search=_search()[:2],
    )


class Cells(HTMLParser):
    """Collects data-metric / data-value attributes and element ids of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str | None], str] = {}
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if "data-metric" in attributes and "data-value" in attributes:
            key = (str(attributes["data-metric"]), attributes.get("data-class"))
            self.values[key] = str(attributes["data-value"])
        if tag == "img":
            self.images.append(str(attributes.get("src")))
        for name in ("href", "src"):
            if attributes.get(name) and tag != "img":
                self.links.append(str(attributes[name]))


def parse_page(page: Path) -> tuple[str, Cells]:
    html = page.read_text(encoding="utf-8")
    cells = Cells()
    cells.feed(html)
    return html, cells


def _value(cells: Cells, metric: str, column: int | None = None) -> float:
    return float(cells.values[(metric, None if column is None else str(column))])


def test_the_report_renders_in_a_real_browser(tmp_path):
    data = _classification()
    written = write_report(tmp_path, data)
    page = tmp_path / "report.html"
    assert written[-1] == page
    assert sorted(p.name for p in written[:-1]) == [
        "confusion_matrix.png",
        "per_class.png",
        "reliability.png",
        "search.png",
    ]

    rendered = render(page, tmp_path / "screenshot.png")

    assert rendered.screenshot.is_file()
    assert distinct_colours(rendered.screenshot) > 500  # figures and text, not a blank page
    shown = min(48, len(mistakes(data.probabilities, data.targets, False, limit=1000)))
    assert rendered.images == 4 + shown - 1  # figures, and every thumbnail but the missing one
    assert rendered.images_ok, rendered.body.get("data-broken")
    assert rendered.console == []
    # The class name is text in the page, never markup.
    assert "owl &lt;b&gt;&amp;" in rendered.dom
    assert "<b>" not in rendered.dom
    assert "<i>" not in rendered.dom
    assert "image unavailable" in rendered.dom
    shutil.copyfile(rendered.screenshot, SCREENSHOT)


def test_the_browser_check_sees_broken_images_and_script_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><p>text</p><img src="missing.png" alt="gone">'
        "<script>notAFunction();</script></body></html>"
    )
    rendered = render(page, tmp_path / "broken.png", width=400, height=300)
    assert not rendered.images_ok
    assert rendered.body["data-broken"] == "gone"
    assert any("Uncaught" in line for line in rendered.console)


def test_the_page_is_self_contained_and_escapes_user_strings(tmp_path):
    write_report(tmp_path, _classification())
    html, cells = parse_page(tmp_path / "report.html")
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for src in cells.images)  # fmt: skip
    assert all(link.startswith("#") for link in cells.links)
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert TRICKY not in html
    assert "owl &lt;b&gt;&amp;&quot;" in html
    assert "trial-3 &lt;i&gt;" in html
    assert {"summary", "confusion-matrix", "per-class", "reliability", "mistakes", "search"} <= (
        cells.ids
    )
    # The search: the exported trial is highlighted and carries this export's metric.
    exported = re.search(r'<tr class="exported"[^>]*>(.*?)</tr>', html)
    assert exported is not None
    assert "trial-3 &lt;i&gt;" in exported.group(1)
    assert f"{_value(cells, 'top1_accuracy'):.4f}" in exported.group(1)
    assert "212.5" in exported.group(1)  # max(charged when listed, the trial's own)
    assert html.count('data-kind="promoted"') == 3
    assert html.count('data-kind="stopped early"') == 1


def test_the_numbers_in_the_page_agree_with_the_trainer_metrics(tmp_path):
    data = _classification(count=120, wrong=0.3)
    write_report(tmp_path, data)
    html, cells = parse_page(tmp_path / "report.html")
    scores, truth = data.probabilities, data.targets
    metrics = classification_metrics(scores, truth).metrics

    assert _value(cells, "calibration_ece") == pytest.approx(metrics["calibration_ece"])
    ece = float(re.search(r'id="ece" data-value="([^"]+)"', html).group(1))  # type: ignore[union-attr]
    assert ece == pytest.approx(expected_calibration_error(scores, truth), abs=1e-15)
    assert f"ECE {ece:.4f}" in html or f"{ece:.4f}" in html
    for name in ("precision", "recall", "f1", "average_precision"):
        for kind in ("macro", "micro"):
            key = f"{name}_{kind}"
            assert _value(cells, key) == pytest.approx(metrics[key], abs=1e-12), key
    assert _value(cells, "top1_accuracy") == pytest.approx(metrics["top1_accuracy"])
    assert float(re.search(r'id="primary-metric"[^>]*data-value="([^"]+)"', html).group(1)) == (  # type: ignore[union-attr]
        pytest.approx(metrics["top1_accuracy"])
    )

    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, scores.argmax(axis=1), labels=range(len(CLASSES)), zero_division=0
    )
    for c in range(len(CLASSES)):
        assert _value(cells, "precision", c) == pytest.approx(precision[c])
        assert _value(cells, "recall", c) == pytest.approx(recall[c])
        assert _value(cells, "f1", c) == pytest.approx(f1[c])
        assert _value(cells, "ap", c) == pytest.approx(
            average_precision_score(truth == c, scores[:, c])
        )
    # The bins: the same 15 bins as the metric, every image in one, and the same ECE.
    bins = reliability(scores, truth)
    assert len(bins.counts) == ECE_BINS
    assert bins.counts.sum() == len(truth)
    filled = bins.counts > 0
    weighted = np.sum(bins.counts[filled] * np.abs(bins.accuracy - bins.confidence)[filled])
    assert weighted / len(truth) == pytest.approx(metrics["calibration_ece"])


def test_a_multilabel_report_skips_what_has_no_meaning_there(tmp_path):
    data = _multilabel()
    written = write_report(tmp_path, data)
    assert sorted(p.name for p in written[:-1]) == ["per_class.png", "search.png"]
    html, cells = parse_page(tmp_path / "report.html")
    assert html.count("Not shown for a multilabel task") == 2
    metrics = multilabel_metrics(data.probabilities, data.targets, 0.5).metrics
    for key in ("precision_macro", "recall_macro", "average_precision_macro", "f1_micro"):
        assert _value(cells, key) == pytest.approx(metrics[key], abs=1e-12), key
    decided = data.probabilities >= 0.5
    precision, recall, _, _ = precision_recall_fscore_support(
        data.targets, decided.astype(int), zero_division=0
    )
    for c in range(4):
        assert _value(cells, "precision", c) == pytest.approx(precision[c])
        assert _value(cells, "recall", c) == pytest.approx(recall[c])
    assert 'class="mistake"' in html
    assert "owl &lt;b&gt;&amp;&quot;" in html


def test_a_perfect_model_has_no_mistakes_to_show(tmp_path):
    truth = np.arange(20) % 4
    scores = np.full((20, 4), 0.02)
    scores[np.arange(20), truth] = 0.94
    data = ReportData(
        model="m", task="classification", classes=list("abcd"), probabilities=scores, targets=truth
    )
    write_report(tmp_path, data)
    html, cells = parse_page(tmp_path / "report.html")
    assert "no-mistakes" in cells.ids
    assert "No confusions" in html
    assert "given no search trials" in html


def test_an_unreadable_image_only_loses_its_thumbnail(tmp_path, caplog):
    from tailor_trainer.cache import CachedReader
    from tailor_trainer.coco import ImageEntry

    good = tmp_path / "good.png"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(good)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    entries = [
        ImageEntry(1, str(good), (0,)),
        ImageEntry(2, str(tmp_path / "bad.png"), (0,)),
        ImageEntry(3, str(tmp_path / "missing.png"), (0,)),
    ]
    with caplog.at_level(logging.WARNING):
        found = report_collect.read_thumbnails(CachedReader(Storage(), None), entries, [0, 1, 2])
    assert list(found) == [0]
    with Image.open(io.BytesIO(found[0])) as image:
        assert image.format == "JPEG"
        assert max(image.size) == report_collect.THUMBNAIL_SIDE
    assert "no thumbnail of image 2" in caplog.text
    assert "no thumbnail of image 3" in caplog.text


def test_a_failing_report_is_a_warning_not_a_failed_export(monkeypatch, caplog):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    from tailor_trainer.report import detection_collect

    monkeypatch.setattr(report_collect, "gather", broken)
    monkeypatch.setattr(detection_collect, "gather_detection", broken)
    for detection in (False, True):
        caplog.clear()
        trial = SimpleNamespace(detection=detection)
        with caplog.at_level(logging.WARNING):
            assert report_collect.write_export_report(trial, "/nowhere") == []  # type: ignore[arg-type]
        assert "report: not written: disk full" in caplog.text


def _run_with_export(tmp_path: Path, data: str, output: str) -> AttemptResult:
    storage = Storage()
    train = write(storage, data, SyntheticSpec(3, 8, seed=0), "train.json")
    evaluation = write(storage, data, SyntheticSpec(3, 4, seed=1), "eval.json")
    config = {
        "job": "ns/job",
        "job_uid": "uid-job",
        "trial": "trial-3 <i>",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": train, "evaluation": evaluation},
        "model": "test_resnet",
        "hyperparameters": {
            "batch_size": 8,
            "input_size": 32,
            "workers": 0,
            "epochs": 1,
            "augmentation": 0.0,
        },
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": output,
        "export": True,
        "search": [trial.model_dump(mode="json") for trial in _search()],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main(["run", "--config", str(path)])
    log = Path(os.environ["TAILOR_TERMINATION_LOG"])
    result = AttemptResult.model_validate_json(log.read_text())
    assert code == ExitCode.SUCCESS, result.reason
    return result


def test_a_run_that_exports_writes_its_report_beside_the_bundle(tmp_path, termination_log):
    _run_with_export(tmp_path, str(tmp_path / "data"), str(tmp_path / "out"))

    export = tmp_path / "out" / "export" / "attempt-1"
    page = export / "report.html"
    assert page.is_file()
    html, cells = parse_page(page)
    assert {"summary", "confusion-matrix", "per-class", "reliability", "mistakes", "search"} <= (
        cells.ids
    )
    for name in ("confusion_matrix", "per_class", "reliability", "search"):
        assert (export / "report" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    best = json.loads((tmp_path / "out" / "checkpoints" / "best.json").read_text())
    # The report scores exactly the exported (best) weights.
    assert _value(cells, "top1_accuracy") == pytest.approx(best["metrics"]["top1_accuracy"])
    assert "class-0" in html
    assert best["dataset_digest"] in html
    card = json.loads((export / "model_card.json").read_text())
    assert card["report"] == "report.html"
    assert {"report.html", "report/confusion_matrix.png", "model.onnx"} <= set(card["files"])
    wrong = round((1 - best["metrics"]["top1_accuracy"]) * 12)
    assert html.count('class="mistake"') == wrong
    assert html.count('class="mistake"') == html.count("data:image/jpeg;base64,")


@pytest.mark.integration
def test_a_run_in_s3_puts_its_report_in_the_bucket(tmp_path, termination_log, s3_storage, bucket):
    output = f"s3://{bucket}/team-a/job/trial-3"
    result = _run_with_export(tmp_path, f"s3://{bucket}/data", output)
    assert result.export_uri == f"{output}/export/attempt-1"  # each attempt its own folder
    html = s3_storage.read(f"{output}/export/attempt-1/report.html").decode()
    assert 'id="mistakes"' in html
    assert s3_storage.read(f"{output}/export/attempt-1/report/reliability.png").startswith(
        b"\x89PNG"
    )
    card = json.loads(s3_storage.read(f"{output}/export/attempt-1/model_card.json"))
    assert card["report"] == "report.html"
    assert not [uri for uri in s3_storage.list(f"{output}/export/") if ".tmp-" in uri]
