"""The self-stop uses the calibration factor of the GPU the attempt runs on (mixed products).

The operator sends the highest factor the job may meet (the pod is not scheduled yet) and a
table per product; the ledger charges the node's own product. An attempt on a cheap GPU
that stopped at the highest factor wasted most of its allowance.
"""

import json
import logging
from pathlib import Path

import pytest

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer import run as run_module
from tailor_trainer.allowance import Allowance
from tailor_trainer.cli import main
from tailor_trainer.gpu_product import PRODUCT_ENV, choose_factor, product_label
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
TABLE = {A100: 1.0, H100: 2.2}
HIGHEST = 2.2  # what the operator sends as calibration_factor for a job allowing both


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("Tesla T4", "Tesla-T4"),
        ("NVIDIA GeForce RTX 4090", "NVIDIA-GeForce-RTX-4090"),
        ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),  # already a label: unchanged
        (" NVIDIA L4\n", "NVIDIA-L4"),  # an environment value with stray whitespace
    ],
)
def test_a_device_name_becomes_the_gpu_product_label(name, label):
    assert product_label(name) == label


@pytest.mark.parametrize(
    ("factors", "env", "device", "factor", "product", "source"),
    [
        # A cheap product: its own factor, so the attempt may run 2.2x longer in wall time.
        (TABLE, None, "NVIDIA A100-SXM4-80GB", 1.0, A100, "device"),
        # The expensive product: the same as the highest.
        (TABLE, None, "NVIDIA H100 80GB HBM3", 2.2, H100, "device"),
        # Unknown to the table: the highest, never over budget.
        (TABLE, None, "NVIDIA L4", HIGHEST, "NVIDIA-L4", "device"),
        # An empty table (an old operator, or none configured): the highest.
        ({}, None, "NVIDIA A100-SXM4-80GB", HIGHEST, A100, "device"),
        # No CUDA device and no environment (a CPU slot): the highest.
        (TABLE, None, None, HIGHEST, None, "none"),
        (TABLE, "", None, HIGHEST, None, "none"),
        # The environment comes first, in label form or as a device name.
        (TABLE, A100, "NVIDIA H100 80GB HBM3", 1.0, A100, "environment"),
        (TABLE, "NVIDIA A100-SXM4-80GB", None, 1.0, A100, "environment"),
        (TABLE, H100, "NVIDIA A100-SXM4-80GB", 2.2, H100, "environment"),
        # An environment product unknown to the table keeps the highest (explicit wins).
        (TABLE, "NVIDIA-L4", "NVIDIA A100-SXM4-80GB", HIGHEST, "NVIDIA-L4", "environment"),
        # A blank environment value is absent: the device decides.
        (TABLE, "  ", "NVIDIA A100-SXM4-80GB", 1.0, A100, "device"),
        # A product dearer than the "highest" (a stale table): its own factor, as charged.
        ({A100: 3.0}, None, "NVIDIA A100-SXM4-80GB", 3.0, A100, "device"),
        # A nonsensical table entry is ignored.
        ({A100: 0.0}, None, "NVIDIA A100-SXM4-80GB", HIGHEST, A100, "device"),
        ({A100: float("nan")}, None, "NVIDIA A100-SXM4-80GB", HIGHEST, A100, "device"),
    ],
)
def test_the_factor_is_that_of_the_gpu_product(factors, env, device, factor, product, source):
    choice = choose_factor(HIGHEST, factors, env, device)
    assert choice.factor == factor
    assert choice.product == product
    assert choice.source == source
    assert choice.reason  # logged: which factor, and why


def test_a_cheap_gpu_gets_the_wall_time_its_allowance_pays_for():
    cheap = choose_factor(HIGHEST, TABLE, None, "NVIDIA A100-SXM4-80GB")
    dear = choose_factor(HIGHEST, TABLE, None, "NVIDIA H100 80GB HBM3")
    on_a100 = Allowance(600, 1, cheap.factor, started=0.0, clock=lambda: 0.0)
    on_h100 = Allowance(600, 1, dear.factor, started=0.0, clock=lambda: 0.0)
    assert on_a100.wall_left() == pytest.approx(600)
    assert on_h100.wall_left() == pytest.approx(600 / 2.2)
    assert on_a100.wall_left() == pytest.approx(2.2 * on_h100.wall_left())


# Through the real run: tailor_trainer.run.run, started by the CLI as in a pod.


def _config(tmp_path: Path, name: str, **overrides: object) -> Path:
    storage = Storage()
    root = str(tmp_path / "data")
    train = write(storage, root, SyntheticSpec(4, 8, seed=0), "train.json")
    evaluation = write(storage, root, SyntheticSpec(4, 2, seed=1), "eval.json")
    config = {
        "job": "team-a/insects",
        "job_uid": "uid-insects",
        "trial": "trial-0",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": train, "evaluation": evaluation},
        "model": "test_resnet",
        "hyperparameters": {
            "batch_size": 16,
            "input_size": 32,
            "workers": 0,
            "augmentation": 0.0,
            "epochs": 1,
        },
        "allowance_gpu_seconds": 600,
        "calibration_factor": HIGHEST,
        "calibration_factors": TABLE,
        "gpus": 0,
        "output": str(tmp_path / name),
        **overrides,
    }
    path = tmp_path / f"config-{name}.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def allowances(monkeypatch: pytest.MonkeyPatch) -> list[Allowance]:
    """Every Allowance the run builds, to read its wall budget without waiting it out."""
    built: list[Allowance] = []

    def record(*args: object, **kwargs: object) -> Allowance:
        allowance = Allowance(*args, **kwargs)  # type: ignore[arg-type]
        built.append(allowance)
        return allowance

    monkeypatch.setattr(run_module, "Allowance", record)
    return built


def test_an_a100_attempt_may_run_2_2x_the_wall_time_of_an_h100_attempt(
    tmp_path, termination_log, allowances, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="tailor_trainer")
    results: dict[str, AttemptResult] = {}
    for product in (A100, H100):
        monkeypatch.setenv(PRODUCT_ENV, product)
        caplog.clear()
        code = main(["run", "--config", str(_config(tmp_path, product))])
        result = AttemptResult.model_validate_json(termination_log.read_text())
        assert code == ExitCode.SUCCESS, result.reason
        results[product] = result
        chosen = [r.getMessage() for r in caplog.records if "calibration factor" in r.getMessage()]
        assert len(chosen) == 1, chosen  # logged once, with the reason
        assert product in chosen[0]
        assert PRODUCT_ENV in chosen[0]

    on_a100, on_h100 = allowances
    assert (on_a100.factor, on_h100.factor) == (1.0, 2.2)
    # The same allowance: the A100 attempt stops itself after 2.2x the wall time.
    assert on_a100.gpu_seconds == on_h100.gpu_seconds == 600
    assert on_a100.wall_left() + on_a100.wall_seconds() == pytest.approx(600)
    assert on_h100.wall_left() + on_h100.wall_seconds() == pytest.approx(600 / 2.2)
    budget_a100 = on_a100.gpu_seconds / on_a100.rate
    budget_h100 = on_h100.gpu_seconds / on_h100.rate
    assert budget_a100 == pytest.approx(2.2 * budget_h100)
    # What the attempt reports is charged at the factor chosen, as the ledger charges it.
    a100, h100 = results[A100], results[H100]
    assert a100.gpu_seconds == pytest.approx(1.0 * a100.wall_seconds, rel=0.01, abs=0.002)
    assert h100.gpu_seconds == pytest.approx(2.2 * h100.wall_seconds, rel=0.01, abs=0.002)


def test_an_a100_attempt_stops_itself_past_the_wall_time_an_h100_would_get(
    tmp_path, termination_log, allowances, monkeypatch
):
    # 11 calibrated seconds: 5 wall seconds on an H100, 11 on an A100. At the highest
    # factor (2.2) the A100 attempt stopped itself within 5 s; now its schedule is fitted
    # to about 11 s less its reserve for the last duties (a 2 s margin, a checkpoint, an
    # evaluation), and it completes that.
    monkeypatch.setenv(PRODUCT_ENV, "NVIDIA A100-SXM4-80GB")  # a device name works too
    config = _config(
        tmp_path,
        "a100",
        allowance_gpu_seconds=11,
        hyperparameters={
            "batch_size": 16,
            "input_size": 32,
            "workers": 0,
            "augmentation": 0.0,
            "epochs": 10_000,
        },
    )
    code = main(["run", "--config", str(config)])
    result = AttemptResult.model_validate_json(termination_log.read_text())

    assert code == ExitCode.SUCCESS, result.reason
    assert result.stopped_by == "completed"
    assert "of 20000 planned steps" in result.reason  # 32 images, 16 a step, 10,000 epochs
    (allowance,) = allowances
    assert allowance.factor == 1.0
    # Past the whole wall budget an H100 attempt would have had (11 / 2.2 = 5 s) ...
    assert result.wall_seconds > 11 / 2.2
    # ... and still within its allowance, charged at the A100's factor.
    assert result.gpu_seconds <= 11
    assert result.gpu_seconds == pytest.approx(result.wall_seconds, rel=0.01, abs=0.002)
