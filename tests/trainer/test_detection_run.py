"""`run` with `task: detection` on generated digits: it learns, keeps the best by map,
exports a bundle whose ONNX matches PyTorch, predicts, and resumes exactly after SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tailor_contract import METRICS, AttemptResult, ExitCode
from tailor_trainer.cli import main
from tests.trainer.detection_data import write_digits

HYPERPARAMETERS = {
    "batch_size": 8,
    "input_size": 96,
    "workers": 0,
    "augmentation": 0.3,
    "lr": 2e-3,
    "log_every_steps": 1,
}


def _config(folder: Path, data: Path, attempt: int = 1, **hyperparameters: Any) -> Path:
    config = {
        "job": "team-a/digits",
        "job_uid": "uid-of-the-digits-job",
        "trial": "trial-0",
        "attempt": attempt,
        "task": "detection",
        "dataset": {"train": str(data / "train.json"), "evaluation": str(data / "eval.json")},
        "model": "test_resnet",
        "hyperparameters": {**HYPERPARAMETERS, **hyperparameters},
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": str(folder / "out"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"config-{attempt}.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder, "train", 60, seed=0)
    write_digits(folder, "eval", 20, seed=1)
    return folder


def _result(termination_log: Path) -> AttemptResult:
    return AttemptResult.model_validate_json(termination_log.read_text())


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_detection_run_learns_exports_and_predicts(tmp_path, digits, termination_log, capsys):
    config = json.loads(_config(tmp_path, digits, epochs=6).read_text())
    config["export"] = True
    path = tmp_path / "config-export.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path)]) == ExitCode.SUCCESS
    result = _result(termination_log)
    assert result.primary_metric == "map"
    assert set(result.metrics) == set(METRICS["detection"])
    # From scratch on 60 images: weak, but far from nothing (a random detector scores
    # map_30 ~0.05 here; measured 0.35 after these 42 steps).
    assert result.metrics["map_30"] > 0.2
    assert result.metrics["map"] > 0.02
    out = tmp_path / "out"
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["metrics"]["map"] == pytest.approx(result.metrics["map"])
    assert len(best["per_class_ap"]) == 3
    card = json.loads((out / "export" / "attempt-1" / "model_card.json").read_text())
    assert card["task"] == "detection"
    assert card["onnx_check"]["map_against_pytorch"] >= 0.99
    assert card["onnx_check"]["max_score_difference"] <= 1e-4
    assert set(card["files"]) == {
        "model.safetensors",
        "config.json",
        "model.torchscript.pt",
        "model.onnx",
        "report.html",
        "report/per_class_ap.png",
        "report/precision_recall.png",
    }
    # The evaluation report describes exactly the exported (best) weights.
    assert card["report"] == "report.html"
    html = (out / "export" / "attempt-1" / "report.html").read_text()
    shown = re.search(r'id="primary-metric" data-metric="map" data-value="([^"]+)"', html)
    assert shown is not None
    assert float(shown.group(1)) == pytest.approx(best["metrics"]["map"], abs=1e-9)
    assert html.count('class="mistake"') == 20  # every evaluation image, drawn
    assert html.count("data:image/jpeg;base64,") == 20
    assert "digit-2" in html
    torchscript = torch.jit.load(str(out / "export" / "attempt-1" / "model.torchscript.pt"))  # type: ignore[no-untyped-call]
    boxes, scores = torchscript(torch.zeros(1, 3, 96, 96))
    assert boxes.shape[:2] == scores.shape[:2]
    assert scores.shape[-1] == 3

    image = str(digits / "eval" / "0000.png")
    capsys.readouterr()
    found = {}
    for backend in ("onnx", "torch"):
        drawn = tmp_path / f"{backend}.png"
        argv = [
            "predict",
            "--model",
            str(out / "export" / "attempt-1"),
            "--backend",
            backend,
            "--json",
        ]
        argv += ["--min-confidence", "0.2", "--max-objects", "5", "--draw", str(drawn), image]
        assert main(argv) == ExitCode.SUCCESS
        document = json.loads(capsys.readouterr().out)
        assert document["metadata"] == {"width": 96, "height": 80}
        objects = document["objects"]
        assert 0 < len(objects) <= 5
        for item in objects:
            box = item["boundingBox"]
            assert 0 <= box["x"] <= box["x"] + box["w"] <= 96
            assert 0 <= box["y"] <= box["y"] + box["h"] <= 80
            assert item["tags"][0]["confidence"] >= 0.2
            assert item["tags"][0]["name"].startswith("digit-")
        assert drawn.stat().st_size > 0
        found[backend] = objects
    # One post-processing for both: the same objects, boxes to the pixel.
    assert [o["boundingBox"] for o in found["onnx"]] == [o["boundingBox"] for o in found["torch"]]


def _weights(output: Path) -> dict[str, torch.Tensor]:
    state = torch.load(output / "checkpoints" / "last.pt", weights_only=True)
    model: dict[str, torch.Tensor] = state["model"]
    return model


def test_sigterm_checkpoints_and_the_detection_run_resumes_exactly(
    tmp_path, digits, termination_log
):
    steps: dict[str, Any] = {"max_steps": 14, "eval_every_epochs": 100.0}
    reference = tmp_path / "reference"
    assert main(["run", "--config", str(_config(reference, digits, **steps))]) == 0
    assert _result(termination_log).steps == 14

    stopping = _config(tmp_path, digits, **steps)
    env = dict(
        os.environ,
        TAILOR_TERMINATION_LOG=str(termination_log),
        OMP_NUM_THREADS=str(torch.get_num_threads()),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tailor_trainer.cli", "run", "--config", str(stopping)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if " step 4/" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.stderr.read()
    assert process.wait(timeout=120) == ExitCode.RETRYABLE
    stopped = _result(termination_log)
    assert stopped.stopped_by == "signal"
    assert 4 <= stopped.steps < 14

    assert main(["run", "--config", str(_config(tmp_path, digits, attempt=2, **steps))]) == 0
    resumed = _result(termination_log)
    assert resumed.resumed_from_step == stopped.steps
    assert resumed.steps == 14
    # Same batches, same flips and jitter, same updates: the same weights.
    expected, actual = _weights(reference / "out"), _weights(tmp_path / "out")
    for name, tensor in expected.items():
        assert torch.allclose(actual[name], tensor, atol=1e-6), name
