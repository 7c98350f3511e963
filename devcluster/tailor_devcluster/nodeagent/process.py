"""A container, played by a local process in a process group of its own.

The process dies with the agent (PR_SET_PDEATHSIG), so a stopped or crashed agent
leaves no trainer behind. SIGTERM goes to the main process, as a runtime sends it
to PID 1; SIGKILL goes to the whole group, as a runtime kills the whole container,
and so does the clean-up once the main process has exited.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _own_group_dying_with_parent() -> None:
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ContainerProcess:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # Spawned from the agent's one long-lived thread: PR_SET_PDEATHSIG fires
            # when the *thread* that forked the child ends.
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_own_group_dying_with_parent,
            )
        self.started = datetime.now(UTC)
        self.started_monotonic = time.monotonic()
        self.finished: datetime | None = None
        self.finished_monotonic: float | None = None
        self.terminated_at: float | None = None  # monotonic time SIGTERM was sent

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def container_id(self) -> str:
        return f"local-process://{self.pid}"

    def poll(self) -> int | None:
        """The exit status once the main process has ended (-N: killed by signal N)."""
        code = self.popen.poll()
        if code is not None and self.finished is None:
            self.finished = datetime.now(UTC)
            self.finished_monotonic = time.monotonic()
            self._kill_group()  # what a runtime does to the rest of the container
        return code

    def terminate(self) -> None:
        """SIGTERM to the main process, once."""
        if self.terminated_at is None and self.popen.poll() is None:
            self.terminated_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def run_seconds(self) -> float | None:
        if self.finished_monotonic is None:
            return None
        return self.finished_monotonic - self.started_monotonic
