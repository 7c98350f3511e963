"""The disk floor under the trainer image's build: a step is refused or killed (with
everything it started) before the disk's free space falls below it."""

import os
import time
from pathlib import Path

import pytest

from tailor_devcluster.diskguard import GIB, DiskFloorReached, DiskGuard


class ShrinkingDisk(DiskGuard):
    """Reports plenty of space for the first `calls` samples, then almost none."""

    calls: int = 1

    def free(self) -> int:
        self.calls -= 1
        value = 100 * GIB if self.calls >= 0 else GIB
        self.lowest_free = value if self.lowest_free is None else min(self.lowest_free, value)
        return value


def test_a_step_runs_and_its_output_comes_back(tmp_path):
    guard = DiskGuard(tmp_path, floor=0)
    assert guard.run(["echo", "built"], "echo") == "built\n"
    assert guard.lowest_free is not None
    assert guard.lowest_free > 0


def test_a_failed_step_says_what_failed_with_its_output(tmp_path):
    guard = DiskGuard(tmp_path, floor=0)
    with pytest.raises(RuntimeError, match=r"the step failed \(exit 3\):\nno luck"):
        guard.run(["sh", "-c", "echo no luck; exit 3"], "the step")


def test_a_step_is_refused_when_the_disk_is_already_under_the_floor(tmp_path):
    marker = tmp_path / "ran"
    guard = DiskGuard(tmp_path, floor=2**62)
    with pytest.raises(DiskFloorReached, match="floor"):
        guard.run(["touch", str(marker)], "touch")
    assert not marker.exists()


def test_a_step_and_its_children_are_killed_when_the_disk_fills(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    guard = ShrinkingDisk(tmp_path, floor=10 * GIB)
    began = time.monotonic()
    with pytest.raises(DiskFloorReached, match="stopped"):
        # A shell that starts a child and waits: both must go.
        guard.run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], "the build")
    assert time.monotonic() - began < 10
    assert guard.lowest_free == GIB
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"
