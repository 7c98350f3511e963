"""Export: every format in the bundle reproduces the PyTorch model's outputs."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import timm
import torch

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer.cli import main
from tailor_trainer.exporter import refusing, write_bundle
from tailor_trainer.model import create_model
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write

CLASSES = ["cat", "dog", "owl"]


def _meta(model_name: str, size: int) -> dict:
    return {
        "model": model_name,
        "task": "classification",
        "classes": CLASSES,
        "input_size": size,
        "data_config": {
            "size": size,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "crop_pct": 0.95,
        },
        "metrics": {"top1_accuracy": 0.5},
        "step": 7,
        "primary_metric": "top1_accuracy",
        "dataset_digest": "sha256:abc",
        "gpu_seconds": 12.5,
        "trial": {"dataset": {"train": "s3://d/train.json", "evaluation": None}},
        "hyperparameters": {"lr": 0.001},
    }


@pytest.mark.parametrize("model_name", ["test_vit", "test_resnet"])
def test_every_exported_format_matches_pytorch(tmp_path, model_name):
    torch.manual_seed(0)
    model = create_model(model_name, len(CLASSES), input_size=32).eval()
    samples = torch.randn(4, 3, 32, 32)
    card = write_bundle(model, _meta(model_name, 32), tmp_path, samples)
    # A batch size the exporter never saw: the ONNX batch axis must be dynamic.
    inputs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(inputs)

    # safetensors + config.json form a folder timm itself loads, offline.
    reloaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(inputs), expected, atol=1e-6)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["label_names"] == CLASSES
    assert config["num_classes"] == 3
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]

    scripted = torch.jit.load(str(tmp_path / "model.torchscript.pt"))  # type: ignore[no-untyped-call]
    with torch.no_grad():
        assert torch.allclose(scripted(inputs), expected, atol=1e-5)

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (logits,) = session.run(["logits"], {"input": inputs.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)

    assert card["onnx_check"]["max_abs_difference"] <= 1e-4
    for name, digest in card["files"].items():
        assert digest == "sha256:" + hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    on_disk = json.loads((tmp_path / "model_card.json").read_text())
    assert on_disk["classes"] == CLASSES
    assert on_disk["dataset"]["digest"] == "sha256:abc"
    assert on_disk["gpu_seconds"] == 12.5
    assert {"torch", "timm", "onnx", "onnxruntime"} <= set(on_disk["versions"])


def _train(tmp_path: Path, data: str, output: str, **overrides) -> tuple[int, AttemptResult]:
    storage = Storage()
    train = write(storage, data, SyntheticSpec(3, 8), "train.json")
    config = {
        "job": "ns/job",
        "job_uid": "uid-job",
        "trial": "t",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": train},
        "model": "test_resnet",
        "hyperparameters": {
            "batch_size": 8,
            "input_size": 32,
            "workers": 0,
            "epochs": 2,
            "augmentation": 0.0,
        },
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": output,
        **overrides,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main(["run", "--config", str(path)])
    log = Path(os.environ["TAILOR_TERMINATION_LOG"])
    return code, AttemptResult.model_validate_json(log.read_text())


def test_the_export_command_bundles_the_best_checkpoint(tmp_path, termination_log):
    output = str(tmp_path / "out")
    code, result = _train(tmp_path, str(tmp_path / "data"), output)
    assert code == ExitCode.SUCCESS, result.reason
    assert main(["export", "--output", output]) == ExitCode.SUCCESS
    card = json.loads((tmp_path / "out" / "export" / "model_card.json").read_text())
    best = json.loads((tmp_path / "out" / "checkpoints" / "best.json").read_text())
    assert card["metrics"] == best["metrics"]
    assert card["step"] == best["step"]
    assert card["classes"] == ["class-0", "class-1", "class-2"]
    reported = AttemptResult.model_validate_json(termination_log.read_text())
    assert reported.export_uri == str(tmp_path / "out" / "export")
    # The digest the operator records is the one of the weights actually written.
    weights = (tmp_path / "out" / "export" / "model.safetensors").read_bytes()
    assert reported.export_digest == "sha256:" + hashlib.sha256(weights).hexdigest()
    assert reported.export_digest == card["files"]["model.safetensors"]


def test_each_attempt_exports_to_its_own_folder_and_never_overwrites_an_earlier_one(
    tmp_path, termination_log
):
    """A promotion (attempt 2, resuming) exports beside attempt 1: the bundle the operator
    recorded for attempt 1 stays exactly what its digest says."""
    output = str(tmp_path / "out")
    code, first = _train(tmp_path, str(tmp_path / "data"), output, export=True)
    assert code == ExitCode.SUCCESS, first.reason
    assert first.export_uri == f"{output}/export/attempt-1"
    before = (tmp_path / "out" / "export" / "attempt-1" / "model.safetensors").read_bytes()
    more = {"batch_size": 8, "input_size": 32, "workers": 0, "epochs": 4, "augmentation": 0.0}
    code, second = _train(
        tmp_path, str(tmp_path / "data"), output, export=True, attempt=2, hyperparameters=more
    )
    assert code == ExitCode.SUCCESS, second.reason
    assert second.resumed_from_step is not None
    assert second.export_uri == f"{output}/export/attempt-2"
    after = (tmp_path / "out" / "export" / "attempt-1" / "model.safetensors").read_bytes()
    assert after == before
    assert first.export_digest == "sha256:" + hashlib.sha256(after).hexdigest()


def test_a_model_that_fails_the_export_check_is_refused_with_its_metrics_not_crashed(
    tmp_path, termination_log, monkeypatch
):
    """A refusal is deterministic (the same weights fail again), so it exits with its own
    code, never the unexplained crash the operator would retry; the attempt's metrics
    still say what the training did, and no bundle is left half-written."""
    monkeypatch.setattr("tailor_trainer.exporter.ONNX_TOLERANCE", -1.0)  # any gap fails
    output = str(tmp_path / "out")
    code, result = _train(tmp_path, str(tmp_path / "data"), output, export=True)
    assert code == ExitCode.EXPORT_REFUSED
    assert result.exit == "EXPORT_REFUSED"
    assert result.stopped_by == "export"
    assert result.reason.startswith(
        "the export check refused the trained model: ONNX logits differ from PyTorch's by"
    )
    assert "top1_accuracy" in result.metrics
    assert result.steps > 0
    assert result.export_uri is None
    assert result.export_digest is None
    assert not (tmp_path / "out" / "export").exists()


def test_a_format_that_cannot_express_the_model_refuses_the_export_command(
    tmp_path, termination_log, monkeypatch
):
    output = str(tmp_path / "out")
    code, trained = _train(tmp_path, str(tmp_path / "data"), output)
    assert code == ExitCode.SUCCESS, trained.reason

    def unsupported(*_: object) -> None:
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr("tailor_trainer.exporter._onnx", unsupported)
    assert main(["export", "--output", output]) == ExitCode.EXPORT_REFUSED
    reason = AttemptResult.model_validate_json(termination_log.read_text()).reason
    assert reason == (
        "the export check refused the trained model: ONNX export failed: RuntimeError: "
        "Unsupported: ONNX export of operator foo"
    )


@pytest.mark.parametrize("error", [MemoryError(), OSError(28, "No space left on device")])
def test_memory_and_disk_failures_during_export_are_not_refusals(error):
    """Another attempt may not meet them: they stay errors the operator retries."""

    def failing() -> None:
        raise error

    with pytest.raises(type(error)):
        refusing("ONNX export", failing)


def test_exporting_before_any_evaluation_is_a_clear_error(tmp_path, termination_log):
    assert main(["export", "--output", str(tmp_path / "empty")]) == ExitCode.INVALID_CONFIG
    reason = AttemptResult.model_validate_json(termination_log.read_text()).reason
    assert "no evaluated checkpoint to export" in reason


@pytest.mark.integration
def test_a_run_in_s3_trains_checkpoints_and_exports(
    tmp_path, termination_log, s3_storage, bucket, s3
):
    output = f"s3://{bucket}/team-a/job/trial-0"
    code, result = _train(tmp_path, f"s3://{bucket}/data", output, export=True)
    assert code == ExitCode.SUCCESS, result.reason
    assert result.export_uri == f"{output}/export/attempt-1"
    weights = s3.client().get_object(
        Bucket=bucket, Key="team-a/job/trial-0/export/attempt-1/model.safetensors"
    )
    assert result.export_digest == "sha256:" + hashlib.sha256(weights["Body"].read()).hexdigest()
    assert result.result_uri == f"{output}/results/attempt-1.json"
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    prefix = "team-a/job/trial-0/"
    for name in (
        "model.safetensors",
        "config.json",
        "model.torchscript.pt",
        "model.onnx",
        "model_card.json",
    ):
        assert f"{prefix}export/attempt-1/{name}" in keys
    assert f"{prefix}checkpoints/last.pt" in keys
    assert not [key for key in keys if ".tmp-" in key]
    document = json.loads(s3_storage.read(f"{output}/results/attempt-1.json"))
    # 24 images, 3 held out for evaluation: 21 // batch 8 = 2 steps per epoch, 2 epochs.
    assert document["result"]["steps"] == result.steps == 4
