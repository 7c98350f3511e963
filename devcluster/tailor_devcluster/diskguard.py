"""A floor under the free disk space while a large image is built or imported.

The trainer image is about 6 GB and each step copies it (buildah's working container
and layer, the archive, containerd's content and snapshot), on a disk other people's
work shares. `run_guarded` runs one step, samples the free space twice a second, kills
the step's whole process group if the space falls below the floor, and records the
lowest free space seen, so the build's peak is measured rather than guessed.
"""

import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30
# Below this the machine's other users would feel it (override: TAILOR_DISK_FLOOR_GIB).
DEFAULT_FLOOR_GIB = 12.0


class DiskFloorReached(RuntimeError):
    """A step was stopped: the disk's free space fell below the floor."""


def floor_bytes() -> int:
    return int(float(os.environ.get("TAILOR_DISK_FLOOR_GIB", DEFAULT_FLOOR_GIB)) * GIB)


@dataclass
class DiskGuard:
    path: Path
    floor: int = field(default_factory=floor_bytes)
    lowest_free: int | None = None

    def free(self) -> int:
        free = shutil.disk_usage(self.path).free
        self.lowest_free = free if self.lowest_free is None else min(self.lowest_free, free)
        return free

    def check(self, what: str) -> None:
        """Refuses to start `what` with less than the floor free."""
        if self.free() < self.floor:
            raise DiskFloorReached(f"{what}: {self.describe()}")

    def describe(self) -> str:
        free = shutil.disk_usage(self.path).free / GIB
        return f"{free:.1f} GiB free, floor {self.floor / GIB:.1f}"

    def run(self, argv: list[str], what: str, cwd: Path | None = None) -> str:
        """Runs `argv`; raises RuntimeError with its output tail if it fails, and
        DiskFloorReached if it had to be killed for space. Returns its stdout."""
        self.check(what)
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # one process group: the step and all it started
        )
        breached = threading.Event()
        finished = threading.Event()

        def watch() -> None:
            while not finished.wait(0.5):
                if self.free() < self.floor:
                    breached.set()
                    os.killpg(popen.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            out, err = popen.communicate()
        finally:
            finished.set()
            watcher.join()
        if breached.is_set():
            raise DiskFloorReached(f"{what} stopped: {self.describe()}")
        if popen.returncode != 0:
            raise RuntimeError(
                f"{what} failed (exit {popen.returncode}):\n{out[-3000:]}\n{err[-3000:]}"
            )
        return out
