"""Few-shot quality: what a user with N labelled images per class gets, on real data
that ships inside packages (MNIST and scikit-learn's digits, ten classes; scikit-image's
faces and other photographs, two), against simple references, on a held-out test split
that no method selects by.

Methods, each with the same N images per class (the search's trainer holds out its own
20% of them to select by, as it does for a user who gives no evaluation split):
  (a) the search with a catalogued ImageNet backbone (EfficientNet-Lite0 from its wheel),
  (b) the same search without the catalog, at the same budget (training from scratch),
  (c) logistic regression on raw pixels,
  (d) a linear probe on the frozen catalogued backbone (written independently here),
and the majority class. The searches run the real trainer as CPU processes, charged
their CPU-seconds capped at each attempt's allowance (bench/automl/runner.py plays the
operator with its own pure code).

    .venv/bin/python bench/fewshot.py                                  # about 2 h on 2 cores
    .venv/bin/python bench/fewshot.py --data mnist --shots 10 --seeds 3  # the goal's row
"""

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Semaphore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for bench.*

from bench.automl.digits import test_accuracy
from bench.automl.runner import Outcome, run_automl
from bench.fewshot.catalog import local_backbone
from bench.fewshot.data import POOLS, FewShot, load_pool, make_fewshot
from bench.fewshot.references import frozen_probe, logistic_regression, majority
from tailor_contract import PretrainedBackbone
from tailor_contract.cost import pretrained_side

SEARCHES = ("search + catalog", "search, scratch")
REFERENCES = ("logistic regression", "frozen probe", "majority class")


def _summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _search(
    data: FewShot,
    budget: float,
    seed: int,
    folder: Path,
    slots: Semaphore,
    catalog: list[PretrainedBackbone],
) -> Outcome:
    outcome = run_automl(data, budget, seed, folder, slots, catalog)
    outcome.test = test_accuracy(data, outcome.best_output) if outcome.best_output else 0.0
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=POOLS, default=["mnist", "digits", "faces"])
    parser.add_argument("--shots", nargs="+", type=int, default=[3, 10, 30])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=240.0, help="CPU-seconds per search")
    parser.add_argument("--parallel", type=int, default=2, help="trainer processes at a time")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["catalog", "scratch", "references"],
        default=["catalog", "scratch", "references"],
        help="run only these (the per-seed comparisons need all three)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fewshot-bench-") as scratch:
        root = Path(scratch)
        lite0 = local_backbone(root / "catalog")
        slots = Semaphore(args.parallel)
        rows: dict[tuple[str, int, str], list[float]] = {}
        charged: dict[tuple[str, int, str], list[float]] = {}
        notes: list[str] = []
        for name in args.data:
            pool = load_pool(name)
            for shots in args.shots:
                draws = [
                    make_fewshot(pool, shots, seed, root / name / f"{shots}-{seed}")
                    for seed in range(args.seeds)
                ]
                # The references first: computed beside the searches, they took the CPU
                # from the searches' first trials, which stop by wall time.
                for data in draws:
                    if "references" not in args.methods:
                        break
                    side = pretrained_side(data.facts, lite0)
                    for method, value in (
                        ("logistic regression", logistic_regression(data)),
                        ("frozen probe", frozen_probe(data, lite0, side)),
                        ("majority class", majority(data)),
                    ):
                        rows.setdefault((name, shots, method), []).append(value)
                jobs: dict[tuple[str, int], Future[Outcome]] = {}
                with ThreadPoolExecutor(max_workers=2 * args.seeds) as workers:
                    for seed, data in enumerate(draws):
                        for method, catalog, short in zip(
                            SEARCHES, ([lite0], []), ("catalog", "scratch"), strict=True
                        ):
                            if short not in args.methods:
                                continue
                            folder = data.root / method.replace(" ", "-").replace(",", "")
                            jobs[method, seed] = workers.submit(
                                _search, data, args.budget, seed, folder, slots, catalog
                            )
                for (method, seed), future in sorted(jobs.items()):
                    outcome = future.result()
                    rows.setdefault((name, shots, method), []).append(outcome.test)
                    charged.setdefault((name, shots, method), []).append(outcome.charged)
                    notes.append(
                        f"{name} N={shots} seed {seed} {method}: test {outcome.test:.3f}, "
                        f"val {outcome.val:.3f}, {outcome.charged:.0f}/{outcome.limit:.0f} "
                        f"CPU-s, {outcome.runs} runs; {outcome.note}"
                    )
                    notes += [f"    {line}" for line in outcome.trials]
                print(
                    f"... {name} N={shots} done at {time.monotonic() - started:.0f} s", flush=True
                )
        print(
            f"\nfew-shot: test accuracy (mean ± sd over {args.seeds} seeds) on a fixed held-out "
            f"split; searches get {args.budget:g} CPU-seconds; backbone {lite0.name} "
            f"({lite0.architecture}, {lite0.pretrained_on})"
        )
        print(f"{'data':7} {'N':>3} {'method':20} {'test accuracy':>15} {'CPU-s used':>11}")
        for (name, shots, method), values in sorted(rows.items()):
            used = charged.get((name, shots, method))
            spent = f"{statistics.mean(used):.0f}" if used else "-"
            print(f"{name:7} {shots:3d} {method:20} {_summary(values):>15} {spent:>11}")
        print("\nper seed:")
        for line in notes:
            print("  " + line)
        print("\nper-seed wins of the catalog search (test accuracy):")
        for name in args.data:
            for shots in args.shots:
                if set(args.methods) != {"catalog", "scratch", "references"}:
                    break
                ours = rows[name, shots, SEARCHES[0]]
                for other in (SEARCHES[1], *REFERENCES[:2]):
                    wins = sum(a > b for a, b in zip(ours, rows[name, shots, other], strict=True))
                    print(f"  {name} N={shots}: beats {other} on {wins}/{len(ours)} seeds")
        print(f"\ntook {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
