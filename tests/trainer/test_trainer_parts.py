"""The trainer's parts on their own: schedule, sampler, split, allowance, divergence, progress."""

import itertools
import math
import socket
import urllib.request

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from tailor_contract import DatasetFacts, Hyperparameters
from tailor_trainer.allowance import Allowance, Reserve, export_estimate
from tailor_trainer.coco import ImageEntry
from tailor_trainer.data import EpochBatchSampler, loader_workers
from tailor_trainer.datasets import stratified_split
from tailor_trainer.divergence import DivergenceMonitor, chance_loss
from tailor_trainer.errors import ConfigError
from tailor_trainer.estimate import estimate_min_gpu_seconds
from tailor_trainer.model import create_model, load_weights
from tailor_trainer.optim import warmup_cosine
from tailor_trainer.progress import Progress
from tailor_trainer.storage import Storage


def test_learning_rate_warms_up_then_decays_to_its_floor():
    multipliers = [warmup_cosine(step, 100, 10, 0.01) for step in range(100)]
    assert multipliers[0] == pytest.approx(0.1)
    assert multipliers[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(multipliers[9:]))
    assert warmup_cosine(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_a_resumed_epoch_replays_the_batches_it_had_not_reached():
    sampler = EpochBatchSampler(size=50, batch_size=8, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=4)
    assert list(sampler) == full[4:]
    sampler.set_epoch(3)
    assert list(sampler) != full  # each epoch has its own order
    assert len(full) == 6 and all(len(batch) == 8 for batch in full)  # noqa: PT018


def test_ranks_split_each_global_batch_without_overlap():
    batches = []
    for rank in range(2):
        sampler = EpochBatchSampler(size=40, batch_size=5, seed=0, rank=rank, world=2)
        sampler.set_epoch(0)
        batches.append(list(sampler))
    for first, second in zip(*batches, strict=True):
        assert not set(first) & set(second)
    seen = {i for rank_batches in batches for batch in rank_batches for i in batch}
    assert seen == set(range(40))


def test_a_dataset_smaller_than_a_batch_still_trains():
    sampler = EpochBatchSampler(size=5, batch_size=32, seed=0)
    assert sampler.batch_size == 5
    assert len(sampler) == 1


def test_the_evaluation_split_is_stratified_and_reproducible():
    entries = tuple(ImageEntry(i, f"/d/{i}.png", (i % 3,)) for i in range(30))
    train, evaluation = stratified_split(entries, 0.2, seed=5)
    assert {e.labels[0] for e in evaluation} == {0, 1, 2}
    assert len(evaluation) == 6
    assert not {e.id for e in train} & {e.id for e in evaluation}
    assert stratified_split(entries, 0.2, seed=5) == (train, evaluation)
    assert stratified_split(entries, 0.2, seed=6) != (train, evaluation)


def test_allowance_counts_calibrated_seconds_and_cpu_as_one_slot():
    now = [100.0]
    cpu = Allowance(gpu_seconds=60, gpus=0, factor=1.5, started=90.0, clock=lambda: now[0])
    assert cpu.used() == pytest.approx(15.0)  # 10 s x 1 slot x 1.5
    assert cpu.wall_left() == pytest.approx(30.0)  # 45 calibrated left at 1.5 per second
    gpus = Allowance(gpu_seconds=60, gpus=4, factor=0.5, started=90.0, clock=lambda: now[0])
    assert gpus.used() == pytest.approx(20.0)
    now[0] = 200.0
    assert gpus.wall_left() == 0.0


def test_the_reserve_estimates_until_it_has_measured():
    reserve = Reserve(checkpoint_bytes=100_000_000, eval_images=1000, batch=100)
    assert reserve.checkpoint == pytest.approx(3.0)  # 1 s + 100 MB at 50 MB/s
    reserve.observe("step", 0.5)
    assert reserve.evaluation == pytest.approx(1.0 + 1000 * 0.005)
    reserve.observe("checkpoint", 0.2)
    reserve.observe("checkpoint", 0.1)
    assert reserve.checkpoint == 0.2  # the worst measured
    assert reserve.total() == pytest.approx(2 * 0.5 + 1.5 * 0.2 + 1.2 * 6.0 + 2.0)
    # An exporting attempt also keeps time for the report's pass and its figures.
    reserve.export = 12.0
    assert reserve.total() == pytest.approx(2 * 0.5 + 1.5 * 0.2 + 1.2 * 6.0 + 12.0 + 9.0 + 2.0)


def test_the_unmeasured_export_is_priced_by_the_size_of_the_weights():
    resnet18, vit_base = 46_800_000, 346_400_000  # float32 weights, bytes
    # A small model keeps a short attempt's training: a 72 s attempt is not all reserve.
    assert 10 < export_estimate(resnet18) < 15
    assert export_estimate(vit_base) > 3 * (export_estimate(resnet18) - 10)
    assert export_estimate(vit_base) > 40


def test_divergence_on_nan_at_once_and_on_no_learning_after_patience():
    assert "nan" in (DivergenceMonitor(math.log(4), 100).update(float("nan"), 3) or "")
    stuck = DivergenceMonitor(math.log(4), patience=20)
    reasons = [stuck.update(math.log(4) + 0.01, step) for step in range(1, 21)]
    assert reasons[:-1] == [None] * 19
    assert reasons[-1] is not None and "no learning" in reasons[-1]  # noqa: PT018
    learning = DivergenceMonitor(math.log(4), patience=20)
    assert all(learning.update(1.4 - 0.02 * s, s) is None for s in range(1, 40))


def test_chance_level_for_multilabel_comes_from_label_frequencies():
    balanced = chance_loss("multilabel", np.array([0.5, 0.5]), 0.0)
    assert balanced == pytest.approx(math.log(2))
    rare = chance_loss("multilabel", np.array([0.05, 0.05]), 0.0)
    assert rare is not None
    assert balanced is not None
    assert rare < balanced
    assert chance_loss("classification", np.array([1.0]), 0.1) is None


def test_the_feasibility_estimate_grows_with_images_and_resolution():
    small = DatasetFacts(images=1000, classes=5, mean_width=100, mean_height=100, digest="d")
    large = small.model_copy(update={"images": 100_000})
    assert estimate_min_gpu_seconds(large) > estimate_min_gpu_seconds(small) > 0
    assert estimate_min_gpu_seconds(small, 448) > estimate_min_gpu_seconds(small, 224)


def test_unknown_or_out_of_range_hyperparameters_are_refused():
    with pytest.raises(ValidationError, match="learning_rate"):
        Hyperparameters.model_validate({"learning_rate": 0.1})
    with pytest.raises(ValidationError, match="batch_size"):
        Hyperparameters.model_validate({"batch_size": 0})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_progress_serves_the_logged_numbers_to_prometheus(caplog):
    caplog.set_level("INFO")
    port = _free_port()
    allowance = Allowance(gpu_seconds=100, gpus=1, factor=1.0, started=0.0, clock=lambda: 10.0)
    progress = Progress(allowance, total_steps=50, log_every=5, port=port, clock=lambda: 10.0)
    try:
        progress.step(5, 0.5, 0.75, 0.001, 32)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        progress.close()
    assert "tailor_trainer_step 5.0" in text
    assert "tailor_trainer_loss 0.75" in text
    assert "tailor_trainer_gpu_seconds 10.0" in text
    assert "tailor_trainer_allowance_gpu_seconds 100.0" in text
    assert "tailor_trainer_images_total 32.0" in text
    assert "step 5/50 loss 0.7500" in caplog.text
    assert "allowance left 1m30s" in caplog.text


def test_pretrained_weights_load_from_a_uri_and_a_new_head_is_kept(tmp_path):
    source = create_model("test_resnet", 10)
    uri = str(tmp_path / "weights.safetensors")
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, uri)
    target = create_model("test_resnet", 4)
    load_weights(target, Storage(), uri)
    assert torch.equal(target.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"])
    assert target.state_dict()["fc.weight"].shape == (4, target.num_features)


def test_weights_of_another_model_are_refused_with_the_reason(tmp_path):
    uri = str(tmp_path / "vit.safetensors")
    save_file(create_model("test_vit", 4).state_dict(), uri)
    with pytest.raises(ConfigError, match="do not fit"):
        load_weights(create_model("test_resnet", 4), Storage(), uri)
    with pytest.raises(ConfigError, match="not found"):
        load_weights(create_model("test_resnet", 4), Storage(), str(tmp_path / "absent"))


def test_an_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="no model named 'resnet_typo'"):
        create_model("resnet_typo", 3)


@pytest.mark.parametrize(
    ("requested", "cpus", "batches", "expected"),
    [
        (4, 16.0, 100, 4),  # a GPU pod with CPUs to spare: as asked
        (4, 1.0, 100, 0),  # a one-CPU slot: the training process does the decoding
        (4, 2.0, 100, 1),
        (4, 8.0, 2, 2),  # ten images: no more workers than batches
        (0, 16.0, 100, 0),  # asked for none
    ],
)
def test_loader_workers_fit_the_cpus_and_the_batches(requested, cpus, batches, expected):
    assert loader_workers(requested, cpus, batches) == expected


def test_a_pods_cpu_request_bounds_the_cpus_and_threads_without_a_quota(monkeypatch):
    """On a node where no CPU limit is set (no quota), the pod's request the operator
    passed decides; without it, every core the process may run on."""
    from tailor_contract.nodes import CPU_REQUEST_ENV
    from tailor_trainer import data

    monkeypatch.setattr(data, "_cgroup_quota", lambda: None)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.delenv(CPU_REQUEST_ENV, raising=False)
    assert data.usable_cpus() == 16.0
    monkeypatch.setenv(CPU_REQUEST_ENV, "1000")
    assert data.usable_cpus() == 1.0
    assert data.cpu_threads(data.usable_cpus()) == 1
    monkeypatch.setenv(CPU_REQUEST_ENV, "2500")
    assert data.cpu_threads(data.usable_cpus()) == 2
    monkeypatch.setenv(CPU_REQUEST_ENV, "500")  # validation's half CPU: still one thread
    assert data.usable_cpus() == 1.0
    monkeypatch.setenv(CPU_REQUEST_ENV, "64000")  # never more than it may run on
    assert data.usable_cpus() == 16.0
    monkeypatch.setattr(data, "_cgroup_quota", lambda: 4.0)  # a limit is what binds
    assert data.usable_cpus() == 4.0


@pytest.mark.parametrize(("hflip", "left_brighter"), [(0.0, True), (1.0, False)])
def test_hflip_decides_whether_training_mirrors_an_image(hflip, left_brighter):
    """A mild augmentation (almost no crop, no RandAugment) of an image bright on the
    left: never mirrored with `hflip` 0, always with 1."""
    from PIL import Image

    from tailor_trainer.data import DataConfig, create_transform

    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = 255
    image = Image.fromarray(pixels)
    config = DataConfig(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear", 1.0)
    transform = create_transform(config, training=True, strength=0.05, hflip=hflip)
    torch.manual_seed(0)
    for _ in range(10):
        tensor = transform(image)
        left, right = tensor[:, :, :16].mean(), tensor[:, :, 16:].mean()
        assert bool(left > right) is left_brighter
