"""`make demo` as root: the product's main job (ten digits per class, a budget, the
catalogued ImageNet backbone) with validation and every trial in containers of the
trainer image on a real kubelet, the trainer's progress read through `kubectl logs`'s
path (the API server and the kubelet), a model exported with its report, and the
machine left as it was. (In its own module: the bridge admits one real node at a time.)

The demo builds the trainer image when its inputs changed (minutes, about 6 GB)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REAL_NODE, real_node_tests_enabled
from .test_teardown import machine_state, node_processes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.real_node,
    pytest.mark.timeout(3600),
]

# A progress line with the trainer's own words after the job's status, e.g.
# "... | best - | t1: epoch 3.00 step 15/80 loss 0.7 ..." (job.trainer_progress): one
# line, where the client's default decoding would give the escaped log as one string.
TRAINER_WORDS = re.compile(r"\| t\d+: epoch [0-9.]+ step \d+/\d+ loss")


def test_make_demo_runs_the_search_in_containers_on_the_real_kubelet(tmp_path: Path) -> None:
    real_node_tests_enabled()
    before = machine_state()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailor_devcluster.demo",
            "--state-dir",
            str(tmp_path),
            # 108 GPU-seconds instead of the example's 180: this test is about the
            # command's path, not the model (tests/e2e/test_fewshot_job.py holds the
            # same job to account on held-out digits); a minute less of the suite.
            "--budget-gpu-hours",
            "0.03",
        ],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert f"the kubelet registered node {REAL_NODE} (containerd, runc)" in output
    assert "TrainingJob digits: Succeeded" in output, output[-6000:]
    # The running trainer's words reached the demo through the kubelet's log endpoint.
    assert TRAINER_WORDS.search(output), output[-6000:]
    assert "\\n" not in output  # log lines read as lines, not one escaped string
    # The search probed and fine-tuned the catalogued backbone; its result is whichever
    # trial scored best (on 8 x 8 scans, at times a ResNet trained from scratch).
    trials = [line for line in output.splitlines() if re.match(r"^   [ *]t\d+ ", line)]
    assert any(" efficientnet-lite0 linear_probe " in line for line in trials), output
    assert any(" efficientnet-lite0 probe_finetune " in line for line in trials), output
    assert len([line for line in trials if line.startswith("   *")]) == 1, output
    assert (tmp_path / "model" / "report.html").is_file()
    assert "classifying held-out digits with it:" in output
    # The demo stopped the node with everything else: nothing of it is left running.
    assert node_processes() == []
    assert machine_state() == before
