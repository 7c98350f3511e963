"""AutoML quality under a budget: the search against the best single fixed recipe and
against random search, on a real dataset (scikit-learn's handwritten digits as PNGs in
COCO form), with the real trainer (`tailor-train run`) as local CPU processes.

The benchmark plays the operator: it asks AutoMLPlanner (the operator's own pure code)
for decisions, runs each attempt as a trainer process and charges the process's CPU
seconds as its GPU-seconds, capped at the attempt's allowance (the ledger's rule); a
process past its allowance is stopped with SIGTERM (the operator's backstop). CPU
seconds, not wall seconds, so that other work on a shared machine does not move the
budget. Printed: validation accuracy (what every method selects by) and the accuracy of
the selected model on a held-out test split.

    .venv/bin/python bench/automl_quality.py                 # about 39 min on 2 cores
    .venv/bin/python bench/automl_quality.py --budget 240     # about 15 min: below one
                                                             # full training of the default
"""

import argparse
import statistics
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Semaphore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for bench.automl

from bench.automl.digits import SIDE, make_digits, test_accuracy
from bench.automl.runner import Outcome, run_automl, run_fixed, run_random


def _summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # About 1.75 full trainings of the default recipe: a budget that leaves room to search.
    parser.add_argument("--budget", type=float, default=720.0, help="CPU-seconds (default 720)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--random-trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2, help="trainer processes at a time")
    parser.add_argument(
        "--third-only", action="store_true", help="skip the search with the whole budget"
    )
    args = parser.parse_args()
    budget = args.budget
    with tempfile.TemporaryDirectory(prefix="automl-bench-") as folder:
        root = Path(folder)
        data = make_digits(root / "digits", args.train_images)
        slots = Semaphore(args.parallel)
        jobs: dict[tuple[str, int], Future[Outcome]] = {}
        with ThreadPoolExecutor(max_workers=4 * args.seeds) as pool:
            for seed in range(args.seeds):
                where = root / f"seed-{seed}"
                jobs["search, 1/3 budget", seed] = pool.submit(
                    run_automl, data, budget / 3, seed, where / "third", slots
                )
                jobs["random search", seed] = pool.submit(
                    run_random, data, budget, seed, where / "random", slots, args.random_trials
                )
                jobs["fixed recipe", seed] = pool.submit(
                    run_fixed, data, budget, seed, where / "fixed", slots
                )
                if not args.third_only:
                    jobs["search, full budget", seed] = pool.submit(
                        run_automl, data, budget, seed, where / "full", slots
                    )
        outcomes = {key: future.result() for key, future in jobs.items()}
        print(
            f"digits: {data.train} train / {data.val} validation / {data.test} test images, "
            f"{SIDE} px; budget {budget:g} CPU-seconds; {args.seeds} seeds"
        )
        print(f"{'method':20} {'seed':>4} {'val':>7} {'test':>7} {'charged':>8} {'limit':>7} runs")
        over = False
        for (method, seed), outcome in sorted(outcomes.items()):
            outcome.test = test_accuracy(data, outcome.best_output) if outcome.best_output else 0.0
            over = over or outcome.charged > outcome.limit + 1e-6
            print(
                f"{method:20} {seed:>4} {outcome.val:7.4f} {outcome.test:7.4f} "
                f"{outcome.charged:8.1f} {outcome.limit:7.1f} {outcome.runs:4d}  {outcome.note}"
            )
        print("\nmean ± standard deviation over seeds")
        means = {}
        for method in sorted({m for m, _ in outcomes}):
            mine = [o for (m, _), o in outcomes.items() if m == method]
            means[method] = statistics.mean(o.val for o in mine)
            print(
                f"{method:20} val {_summary([o.val for o in mine])}  "
                f"test {_summary([o.test for o in mine])}  "
                f"charged {_summary([o.charged for o in mine])} of {mine[0].limit:g}"
            )
        third, rand = means["search, 1/3 budget"], means["random search"]
        verdict = [
            f"never over budget: {'yes' if not over else 'NO'}",
            f"search with 1/3 of the budget vs random search: {third:.4f} vs {rand:.4f} "
            f"({'reached' if third >= rand else 'not reached'})",
        ]
        if "search, full budget" in means:
            full, fixed = means["search, full budget"], means["fixed recipe"]
            verdict.append(
                f"search vs the fixed recipe, same budget: {full:.4f} vs {fixed:.4f} "
                f"({'matched' if full >= fixed else 'below'})"
            )
        print("\n" + "; ".join(verdict))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
