"""Recipes and catalogued backbones: digest-checked weights, the backbone's input config,
per-part learning rates, the linear probe and probe-then-fine-tune (LP-FT)."""

import functools
import hashlib
import http.server
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tailor_contract import AttemptResult, ExitCode, Hyperparameters, PretrainedBackbone
from tailor_contract import TrialConfig as Config
from tailor_trainer import run as run_module
from tailor_trainer.allowance import Allowance
from tailor_trainer.cli import main
from tailor_trainer.distributed import World
from tailor_trainer.errors import ConfigError
from tailor_trainer.evaluate import predict, score
from tailor_trainer.metrics import Evaluation
from tailor_trainer.model import create_model
from tailor_trainer.optim import create_optimizer, create_scheduler
from tailor_trainer.probe import fit_linear_probe
from tailor_trainer.storage import ObjectNotFound, Storage
from tailor_trainer.synthetic import SyntheticSpec, build, write
from tailor_trainer.trial import build_trial

ARCHITECTURE = "test_resnet"
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
FAST: dict[str, Any] = {"batch_size": 16, "workers": 0, "augmentation": 0.0}
CPU = World(rank=0, local_rank=0, size=1, device=torch.device("cpu"))


def _hp(**extra: Any) -> Hyperparameters:
    return Hyperparameters.model_validate({**FAST, **extra})


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _pretrain(steps: int = 30) -> torch.nn.Module:
    """A small "ImageNet" backbone: test_resnet with a 1000-class head, trained for a
    few steps on eight colours so its features and norm statistics mean something."""
    torch.manual_seed(0)
    model = create_model(ARCHITECTURE, 1000)
    document, files = build(SyntheticSpec(8, 16, seed=7))
    images = torch.stack(
        [
            torch.from_numpy(
                np.array(Image.open(io.BytesIO(files[i["file_name"]])).convert("RGB"))
            ).permute(2, 0, 1)
            for i in document["images"]
        ]
    )
    inputs = (images.float() / 255 - 0.5) / 0.5
    labels = torch.tensor([a["category_id"] - 1 for a in document["annotations"]])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(0, len(inputs), (32,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory) -> PretrainedBackbone:
    """A catalog entry: the weights file, its digest, and how it was pretrained."""
    path = tmp_path_factory.mktemp("catalog") / "test-resnet-colours.safetensors"
    save_file({k: v.contiguous() for k, v in _pretrain().state_dict().items()}, str(path))
    return PretrainedBackbone(
        name="test-resnet-colours",
        architecture=ARCHITECTURE,
        weights=str(path),
        digest=_digest(path),
        pretrained_on="eight colours",
        input_size=32,
        mean=MEAN,
        std=STD,
        interpolation="bilinear",
        gmacs=0.01,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[str, str]:
    """Four classes, ten training images each (few-shot), eight each for evaluation."""
    root = tmp_path_factory.mktemp("few-shot")
    storage = Storage()
    train = write(storage, str(root), SyntheticSpec(4, 10, seed=0), "train.json")
    evaluation = write(storage, str(root), SyntheticSpec(4, 8, seed=1), "eval.json")
    return train, evaluation


def _config(tmp_path: Path, data: tuple[str, str], backbone: PretrainedBackbone | None, **extra):
    hyperparameters = {**FAST, **extra.pop("hyperparameters", {})}
    fields = {
        "job": "team-a/few-shot",
        "job_uid": "uid-few-shot",
        "trial": "trial-0",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": data[0], "evaluation": data[1]},
        "model": ARCHITECTURE,
        "backbone": backbone.model_dump() if backbone else None,
        "hyperparameters": hyperparameters,
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": str(tmp_path / "out"),
        **extra,
    }
    return Config.model_validate(fields)


def _run(config: Config, termination_log: Path) -> tuple[int, AttemptResult]:
    hp = Hyperparameters.model_validate(config.hyperparameters)
    code = run_module.run(config, hp, time.monotonic())
    return code, AttemptResult.model_validate_json(termination_log.read_text())


def _backbone_state(path: str | Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("fc.")}


def test_a_catalogued_backbone_loads_with_its_input_size_and_normalisation(
    tmp_path, dataset, catalogued
):
    trial = build_trial(_config(tmp_path, dataset, catalogued), _hp(), CPU, Storage())
    own = trial.plain.state_dict()
    for key, value in _backbone_state(catalogued.weights).items():
        assert torch.equal(own[key], value), key
    assert own["fc.weight"].shape == (4, trial.plain.num_features)  # a new head, 4 classes
    config = trial.data_config
    assert (config.size, config.mean, config.std) == (32, MEAN, STD)
    assert config.interpolation == "bilinear"  # the entry's, not timm's bicubic
    # test_resnet's own pretrained config says 160 px and other statistics.
    own_config = timm.models.get_pretrained_cfg(ARCHITECTURE)
    assert own_config is not None
    assert own_config.input_size == (3, 160, 160)

    hp = _hp(input_size=48)
    assert (
        build_trial(_config(tmp_path, dataset, catalogued), hp, CPU, Storage()).data_config.size
        == 48
    )


def test_weights_that_do_not_match_the_digest_are_refused_naming_the_backbone(
    tmp_path, dataset, catalogued
):
    wrong = "sha256:" + "0" * 64
    tampered = catalogued.model_copy(update={"digest": wrong})
    with pytest.raises(ConfigError) as refused:
        build_trial(_config(tmp_path, dataset, tampered), _hp(), CPU, Storage())
    message = str(refused.value)
    assert "test-resnet-colours" in message
    assert wrong in message
    assert catalogued.digest in message  # what the file actually is


def test_a_model_other_than_the_backbones_architecture_is_refused(
    tmp_path, dataset, catalogued, termination_log
):
    config = _config(tmp_path, dataset, catalogued, model="test_efficientnet")
    path = tmp_path / "trial.json"
    path.write_text(config.model_dump_json())
    assert main(["run", "--config", str(path)]) == ExitCode.INVALID_CONFIG
    result = AttemptResult.model_validate_json(termination_log.read_text())
    assert "'test_efficientnet' is not the architecture of backbone 'test-resnet-colours'" in (
        result.reason
    )


def test_missing_backbone_weights_are_a_config_error(tmp_path, dataset, catalogued):
    gone = catalogued.model_copy(update={"weights": str(tmp_path / "absent.safetensors")})
    with pytest.raises(ConfigError, match="backbone 'test-resnet-colours': its weights are not"):
        build_trial(_config(tmp_path, dataset, gone), _hp(), CPU, Storage())


def test_the_classifier_learns_at_lr_and_the_backbone_at_its_fraction():
    model = create_model(ARCHITECTURE, 4)
    hp = Hyperparameters(lr=0.01, backbone_lr_scale=0.1, weight_decay=0.05)
    optimizer = create_optimizer(model, hp)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(names.values())  # every parameter, once
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            name = names[id(parameter)]
            expected_lr = 0.01 if name.startswith("fc.") else 0.001
            assert group["lr"] == pytest.approx(expected_lr), name
            decays = parameter.ndim > 1  # biases and norm weights: no weight decay
            assert group["weight_decay"] == (0.05 if decays else 0.0), name
    assert optimizer.param_groups[0]["lr"] == 0.01  # what the progress line shows

    scheduler = create_scheduler(optimizer, hp, total=100)
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    rates = {g["part"]: g["lr"] for g in optimizer.param_groups}
    assert rates["backbone"] == pytest.approx(0.1 * rates["classifier"])
    assert rates["classifier"] < 0.01  # decaying, both parts by the same multiplier


def test_the_probe_is_multinomial_logistic_regression_with_l2():
    """The same optimum as scikit-learn's L-BFGS logistic regression (C = 1 / (N x decay))
    on the centred features scaled to unit mean variance."""
    from sklearn.linear_model import LogisticRegression

    generator = np.random.default_rng(0)
    targets = generator.integers(0, 3, 90)
    features = generator.normal(size=(90, 6)) * [1, 2, 3, 0.5, 4, 1] + targets[:, None] * 0.8
    decay = 0.05
    fit = fit_linear_probe(torch.tensor(features), torch.tensor(targets), 3, False, decay)
    ours = torch.softmax(torch.tensor(features) @ fit.weight.double().T + fit.bias.double(), 1)

    centred = features - features.mean(0)
    scaled = centred / np.sqrt((centred**2).mean())
    reference = LogisticRegression(C=1 / (90 * decay), tol=1e-10, max_iter=10_000)
    expected = reference.fit(scaled, targets).predict_proba(scaled)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)
    assert 0 < fit.iterations < 500


def test_the_multilabel_probe_is_one_logistic_regression_per_class():
    from sklearn.linear_model import LogisticRegression

    generator = np.random.default_rng(1)
    labels = (generator.random((80, 3)) < 0.5).astype(np.float64)
    features = generator.normal(size=(80, 5)) + labels @ generator.normal(size=(3, 5))
    decay = 0.1
    fit = fit_linear_probe(torch.tensor(features), torch.tensor(labels), 3, True, decay)
    ours = torch.sigmoid(torch.tensor(features) @ fit.weight.double().T + fit.bias.double())

    centred = features - features.mean(0)
    scaled = centred / np.sqrt((centred**2).mean())
    for label in range(3):
        reference = LogisticRegression(C=1 / (80 * decay), tol=1e-10, max_iter=10_000)
        expected = reference.fit(scaled, labels[:, label]).predict_proba(scaled)[:, 1]
        np.testing.assert_allclose(ours[:, label].numpy(), expected, atol=1e-4)


def test_a_linear_probe_fits_only_the_classifier_and_exports(
    tmp_path, dataset, catalogued, termination_log
):
    config = _config(
        tmp_path, dataset, catalogued, export=True, hyperparameters={"recipe": "linear_probe"}
    )
    code, result = _run(config, termination_log)

    assert code == ExitCode.SUCCESS, result.reason
    assert result.stopped_by == "completed"
    assert result.metrics["top1_accuracy"] >= 0.9  # chance is 0.25
    assert result.epochs == 1.0  # one pass over the training images
    assert result.images_seen == 40
    assert 0 < result.steps < 500  # L-BFGS iterations
    assert f"({result.steps} L-BFGS iterations)" in result.reason
    out = tmp_path / "out"
    best = load_file(str(out / "checkpoints" / "best.safetensors"))
    for key, value in _backbone_state(catalogued.weights).items():
        assert torch.equal(best[key], value), key  # the backbone is bit-identical
    assert best["fc.weight"].abs().sum() > 0
    assert result.export_uri == str(out / "export" / "attempt-1")
    card = json.loads((out / "export" / "attempt-1" / "model_card.json").read_text())
    assert card["input"]["mean"] == list(MEAN)
    assert card["metrics"] == result.metrics

    # Scored from the features, the probe scores the same as the model itself does.
    trial = build_trial(config, _hp(), CPU, Storage())
    trial.plain.load_state_dict(best)
    assert trial.eval_loader is not None
    probabilities, targets = predict(
        trial.plain, trial.eval_loader, CPU.device, trial.autocast, False
    )
    assert probabilities is not None
    again = score(probabilities, targets, False, 0.5).metrics
    assert again == pytest.approx(result.metrics, abs=1e-6)


def test_a_multilabel_linear_probe_learns(tmp_path, catalogued, termination_log):
    storage = Storage()
    root = str(tmp_path / "data")
    train = write(storage, root, SyntheticSpec(4, 12, task="multilabel", seed=0), "train.json")
    evaluation = write(storage, root, SyntheticSpec(4, 6, task="multilabel", seed=1), "eval.json")
    config = _config(
        tmp_path,
        (train, evaluation),
        catalogued,
        task="multilabel",
        hyperparameters={"recipe": "linear_probe"},
    )
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    assert result.metrics["average_precision_macro"] >= 0.8  # a class's base rate is ~0.5


def test_probe_finetune_starts_from_the_probe_and_then_trains_the_backbone(
    tmp_path, dataset, catalogued, termination_log
):
    probe_dir, tuned_dir = tmp_path / "probe", tmp_path / "tuned"
    _, probed = _run(
        _config(probe_dir, dataset, catalogued, hyperparameters={"recipe": "linear_probe"}),
        termination_log,
    )
    hyperparameters = {
        "recipe": "probe_finetune",
        "lr": 1e-4,
        "backbone_lr_scale": 0.1,
        "max_steps": 2,
        "warmup_fraction": 0.0,
    }
    code, tuned = _run(
        _config(tuned_dir, dataset, catalogued, hyperparameters=hyperparameters), termination_log
    )

    assert code == ExitCode.SUCCESS, tuned.reason
    assert tuned.steps == 2
    assert tuned.images_seen == 40 + 2 * 16  # the probe's pass, then two batches
    assert tuned.reason.startswith("a linear probe fitted on the features of 40 of 40")
    document = json.loads((tuned_dir / "out" / "result.json").read_text())
    assert document["best"]["value"] >= probed.metrics["top1_accuracy"]  # never below the probe
    probe = load_file(str(probe_dir / "out" / "checkpoints" / "best.safetensors"))
    state = torch.load(tuned_dir / "out" / "checkpoints" / "last.pt", weights_only=True)["model"]
    # Two small steps from the probe's classifier: still next to it...
    assert torch.allclose(state["fc.weight"], probe["fc.weight"], atol=1e-3)
    assert not torch.equal(state["fc.weight"], probe["fc.weight"])
    # ...while the backbone moved (at a tenth of the classifier's rate).
    moved = state["conv1.0.weight"] - probe["conv1.0.weight"]
    assert 0 < moved.abs().max() < 1e-4


def test_the_reported_metrics_are_those_of_the_exported_weights(
    tmp_path, dataset, catalogued, termination_log
):
    # A learning rate far too high: fine-tuning wrecks what the probe found, so the
    # last evaluation is worse than the best one, which is what the export holds.
    hyperparameters = {
        "recipe": "probe_finetune",
        "lr": 0.05,
        "backbone_lr_scale": 1.0,
        "max_steps": 6,
        "warmup_fraction": 0.0,
        "eval_every_epochs": 0.3,
    }
    config = _config(tmp_path, dataset, catalogued, export=True, hyperparameters=hyperparameters)
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    document = json.loads((tmp_path / "out" / "result.json").read_text())
    last = document["last_evaluation"]["metrics"]["top1_accuracy"]
    assert last < document["best"]["value"]  # the premise: the last is not the best
    assert result.metrics == document["best"]["metrics"]
    card = json.loads((tmp_path / "out" / "export" / "attempt-1" / "model_card.json").read_text())
    assert card["metrics"] == result.metrics


def test_a_better_score_the_evaluation_split_cannot_resolve_does_not_replace_a_lower_loss(
    tmp_path, dataset, catalogued, termination_log, monkeypatch
):
    """Scripted evaluations on the 32 evaluation images: 0.90 then 0.875 is one image
    apart (a close call, the lower loss is kept); 0.75 afterwards is clearly worse,
    however low its loss. Keeping the highest accuracy would keep the 0.90."""
    script = iter([(0.75, 1.1), (0.90, 0.84), (0.875, 0.50)])

    def scripted(*_: Any) -> Evaluation:
        top1, loss = next(script, (0.75, 0.30))
        return Evaluation({"top1_accuracy": top1, "log_loss": loss})

    monkeypatch.setattr(run_module, "score", scripted)
    hyperparameters = {"recipe": "probe_finetune", "max_steps": 9, "eval_every_epochs": 0.4}
    config = _config(tmp_path, dataset, catalogued, hyperparameters=hyperparameters)
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    document = json.loads((tmp_path / "out" / "result.json").read_text())
    assert document["last_evaluation"]["metrics"]["top1_accuracy"] == 0.75  # all were run
    assert result.metrics == {"top1_accuracy": 0.875, "log_loss": 0.50}


def test_fine_tuning_after_the_probe_keeps_the_pretrained_norm_statistics(
    tmp_path, dataset, catalogued, termination_log
):
    hyperparameters = {"recipe": "probe_finetune", "max_steps": 3, "lr": 1e-3}
    config = _config(tmp_path, dataset, catalogued, hyperparameters=hyperparameters)
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    before = _backbone_state(catalogued.weights)
    after = torch.load(tmp_path / "out" / "checkpoints" / "last.pt", weights_only=True)["model"]
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats
    for key in stats:
        assert torch.equal(after[key], before[key]), key
    weights = [k for k in before if k.endswith("conv1.0.weight")]
    assert not torch.equal(after[weights[0]], before[weights[0]])  # the rest still trains


def test_a_resumed_probe_finetune_does_not_probe_again(
    tmp_path, dataset, catalogued, termination_log, monkeypatch
):
    hyperparameters = {"recipe": "probe_finetune", "max_steps": 2}
    config = _config(tmp_path, dataset, catalogued, hyperparameters=hyperparameters)
    code, first = _run(config, termination_log)
    assert code == ExitCode.SUCCESS

    def no_probe(*_, **__):
        raise AssertionError("a resumed attempt probed again")

    monkeypatch.setattr(run_module, "extract_features", no_probe)
    again = config.model_copy(
        update={"attempt": 2, "hyperparameters": {**FAST, **hyperparameters, "max_steps": 4}}
    )
    code, second = _run(again, termination_log)
    assert code == ExitCode.SUCCESS, second.reason
    assert second.resumed_from_step == 2
    assert second.steps == 4
    assert second.images_seen == first.images_seen + 2 * 16


def test_sigterm_while_computing_features_is_retryable_with_nothing_to_resume(
    tmp_path, dataset, catalogued, termination_log, monkeypatch
):
    from tailor_trainer.probe import extract_features as real

    def interrupted(model, loader, device, autocast, channels_last, after_batch):
        def after(done, seconds):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets the flag at once
            return after_batch(done, seconds)

        return real(model, loader, device, autocast, channels_last, after)

    monkeypatch.setattr("tailor_trainer.run.extract_features", interrupted)
    config = _config(tmp_path, dataset, catalogued, hyperparameters={"recipe": "probe_finetune"})
    code, result = _run(config, termination_log)
    assert code == ExitCode.RETRYABLE
    assert result.stopped_by == "signal"
    assert "nothing to resume" in result.reason
    # No checkpoint: a retry must probe again, not fine-tune an unprobed model.
    assert not (tmp_path / "out" / "checkpoints" / "last.pt").exists()


def test_the_allowance_cuts_the_probes_pass_short_and_it_fits_what_it_has(
    tmp_path, dataset, catalogued, termination_log, monkeypatch
):
    monkeypatch.setattr(Allowance, "wall_left", lambda self: 0.0)
    config = _config(tmp_path, dataset, catalogued, hyperparameters={"recipe": "probe_finetune"})
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    assert result.stopped_by == "allowance"
    assert result.images_seen == 32  # the first batch of the training pass (2 x 16)
    assert result.steps == 0  # no fine-tuning step
    assert "32 of 40 training images" in result.reason
    assert "top1_accuracy" in result.metrics  # the probe was evaluated and kept
    assert (tmp_path / "out" / "checkpoints" / "best.safetensors").is_file()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_) -> None:
        pass


@pytest.fixture
def mirror(catalogued) -> Iterator[str]:
    """An in-cluster mirror: the catalog's folder over plain HTTP."""
    folder = str(Path(catalogued.weights).parent)
    handler = functools.partial(_Quiet, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_backbone_weights_load_from_an_http_mirror(tmp_path, dataset, catalogued, mirror):
    storage = Storage()
    uri = f"{mirror}/{Path(catalogued.weights).name}"
    assert storage.read(uri) == Path(catalogued.weights).read_bytes()
    assert storage.exists(uri)
    assert not storage.exists(f"{mirror}/absent")
    with pytest.raises(ObjectNotFound, match="HTTP 404"):
        storage.read(f"{mirror}/absent")
    mirrored = catalogued.model_copy(update={"weights": uri})
    trial = build_trial(_config(tmp_path, dataset, mirrored), _hp(), CPU, storage)
    expected = _backbone_state(catalogued.weights)["conv1.0.weight"]
    assert torch.equal(trial.plain.state_dict()["conv1.0.weight"], expected)
