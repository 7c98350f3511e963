"""Mirroring in training: the search's default fine-tuning with flips (the trainer's
default, `hflip` 0.5) and without (`hflip` 0), on the few-shot benchmark's real digits
and draws, scored on its fixed held-out test split. Also prints validation's pixel
reference on the evaluation images and on their mirror images.

    .venv/bin/python bench/mirroring.py                       # about 25 min on 2 cores
    .venv/bin/python bench/mirroring.py --data mnist --seeds 1  # about 5 min
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for bench.*

from bench.automl.digits import test_accuracy
from bench.fewshot.catalog import local_backbone
from bench.fewshot.data import FewShot, load_pool, make_fewshot
from tailor_contract import DatasetRef, PretrainedBackbone, TrialConfig
from tailor_operator.core.search.space import build_space

FLIPS = (0.5, 0.0)


def fine_tune(
    data: FewShot, backbone: PretrainedBackbone, epochs: float, hflip: float, folder: Path
) -> float:
    """The search's default fine-tuning of `backbone` for `epochs`, held-out accuracy."""
    config = build_space(data.facts, catalog=[backbone]).default()
    hp = config.hyperparameters(epochs) | {"hflip": hflip, "workers": 0, "log_every_steps": 10_000}
    output = folder / f"hflip-{hflip}"
    trial = TrialConfig(
        job="bench/mirroring",
        job_uid="bench-mirroring",
        trial=output.name,
        attempt=1,
        task="classification",
        dataset=DatasetRef(train=str(data.root / "train.json")),
        model=config.model,
        backbone=backbone,
        hyperparameters=hp,
        allowance_gpu_seconds=1e6,  # it runs its epochs: no allowance stops it
        calibration_factor=1.0,
        gpus=0,
        output=f"{output}/",
        seed=data.seed,
        metrics_port=0,
    )
    path = folder / f"{output.name}.json"
    path.write_text(trial.model_dump_json())
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "TAILOR_TERMINATION_LOG": str(folder / f"{output.name}.termination"),
    }
    subprocess.run(
        [sys.executable, "-m", "tailor_trainer", "run", "--config", str(path)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return test_accuracy(data, str(output))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["mnist", "digits"])
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=2, help="trainer processes at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tailor-mirroring-") as temporary:
        root = Path(temporary)
        backbone = local_backbone(root / "catalog")
        for name in args.data:
            pool = load_pool(name)
            draws = []
            for seed in range(args.seeds):
                draw = make_fewshot(pool, args.shots, seed, root / f"{name}-{seed}")
                draws.append(draw)
                facts = draw.facts
                print(
                    f"{name} N={args.shots} seed {seed}: pixel reference "
                    f"{facts.pixel_reference}, mirrored {facts.mirrored_pixel_reference}",
                    flush=True,
                )
            with ThreadPoolExecutor(args.parallel) as workers:
                runs = {
                    (d.seed, hflip): workers.submit(
                        fine_tune, d, backbone, args.epochs, hflip, root / f"{name}-{d.seed}"
                    )
                    for d in draws
                    for hflip in FLIPS
                }
                scores = {key: future.result() for key, future in runs.items()}
            for hflip in FLIPS:
                values = [scores[(d.seed, hflip)] for d in draws]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                each = " / ".join(f"{v:.3f}" for v in values)
                print(
                    f"{name} N={args.shots} hflip {hflip}: test accuracy "
                    f"{statistics.mean(values):.3f} ± {spread:.3f} ({each})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
