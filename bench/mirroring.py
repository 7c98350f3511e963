"""Mirroring in training: the search's default fine-tuning with flips (the trainer's
default, `hflip` 0.5) and without (`hflip` 0), on the few-shot benchmark's real digits
and draws, scored on its fixed held-out test split. Also prints validation's pixel
reference on the evaluation images and on their mirror images.

    .venv/bin/python bench/mirroring.py                       # about 25 min on 2 cores
    .venv/bin/python bench/mirroring.py --data mnist --seeds 1  # about 5 min
"""

import argparse
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Semaphore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for bench.*

from bench.automl.digits import test_accuracy
from bench.automl.runner import Books
from bench.fewshot.catalog import local_backbone
from bench.fewshot.data import FewShot, load_pool, make_fewshot
from tailor_contract import PretrainedBackbone
from tailor_operator.core.search.space import build_space

FLIPS = (0.5, 0.0)
UNLIMITED = 1e6  # CPU-seconds


def fine_tune(
    data: FewShot, backbone: PretrainedBackbone, epochs: float, hflip: float, folder: Path
) -> float:
    """The search's default fine-tuning of `backbone` for `epochs`, held-out accuracy."""
    config = build_space(data.facts, catalog=[backbone]).default()
    # No allowance stops it: it runs its epochs.
    books = Books(UNLIMITED, Semaphore(1), folder, data.seed)
    hp = config.hyperparameters(epochs) | {"hflip": hflip}
    _, output = books.run(data, f"hflip-{hflip}", config.model, hp, UNLIMITED, 1, backbone)
    return test_accuracy(data, output)


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
