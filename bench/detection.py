"""Detection: (a) the trainer's detection training step against a minimal torchvision
loop on the same network, weights and batches, in this process; (b) mAP against budget:
the real trainer (`tailor-train run`, a fixed recipe, stopped by its allowance) on
generated digits (scikit-learn's real 8x8 scans pasted on canvases, tests' generator),
its best checkpoint scored through `predict`'s code on a held-out test split it never
saw (`--export`: each run exports and its ONNX bundle is scored instead).

(a) Ours: tailor_trainer's Detector (FCOS head and loss on a timm backbone + scaled
FPN), its optimizer groups, scheduler and StepRunner, and the per-step duties of
`run.Attempt` (loss read, divergence check, progress). Reference: torchvision's own
`FCOS` class wrapped around deep copies of the same backbone, pyramid and head (so the
first losses agree), torchvision's transform (resize to the same side, identity
normalisation), AdamW and a sum of its three losses: the shortest correct loop. Rounds
alternate; on a CPU, one intra-op thread and its CPU-seconds are timed, so that other
work on a shared machine moves the figures less.

(b) Seconds are the trainer's own allowance clock: on a CPU, wall seconds (on a GPU,
wall x GPUs x factor), so other work on a shared machine shrinks what a budget buys.

    .venv/bin/python bench/detection.py                      # about 11 min on 2 CPU cores
    .venv/bin/python bench/detection.py --budgets 60 --skip-throughput   # about 2 min
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: bench.detect, tests

from bench.detect.budget import budgets
from bench.detect.step import CUDA, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50" if CUDA else "test_resnet,resnet18")
    parser.add_argument("--side", type=int, default=512 if CUDA else 96)
    parser.add_argument("--batch", type=int, default=16 if CUDA else 8)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10 if CUDA else 2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-model", default="resnet18" if CUDA else "test_resnet")
    parser.add_argument("--budgets", default="600,1800" if CUDA else "60,150,300")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--eval", type=int, default=30)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument(
        "--export", action="store_true", help="export each run and score its ONNX bundle"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-budgets", action="store_true")
    args = parser.parse_args()
    if not CUDA:
        torch.set_num_threads(1)  # as the tests and bench/trainer_throughput.py
    # Wall-clock budgets buy less on a busy machine: say how busy this one was.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="detection-bench-") as scratch:
        folder = Path(scratch)
        if not args.skip_throughput:
            throughput(args, folder)
        if not args.skip_budgets:
            budgets(args, folder)


if __name__ == "__main__":
    main()
