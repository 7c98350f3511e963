"""The operator as a real process, started, killed and restarted by tests."""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tailor_devcluster.ports import free_port
from tailor_devcluster.waiting import eventually

FAST = {
    # Small numbers so failures, retries and overruns happen within seconds.
    "TAILOR_TRAINER_IMAGE": "registry.invalid/tailor-trainer:test",
    "TAILOR_MAX_ATTEMPTS": "3",
    "TAILOR_MAX_WAIVED_ATTEMPTS": "6",
    "TAILOR_BACKOFF_BASE_SECONDS": "1",
    "TAILOR_BACKOFF_MAX_SECONDS": "4",
    "TAILOR_ALLOWANCE_GRACE_SECONDS": "2",
    "TAILOR_IMAGE_PULL_TIMEOUT_SECONDS": "3",
    "TAILOR_DELETION_TIMEOUT_SECONDS": "20",
    "TAILOR_CPU_PER_GPU": "0.5",
    "TAILOR_MEMORY_GIB_PER_GPU": "1",
    "TAILOR_VALIDATION_CPU": "0.1",
    "TAILOR_VALIDATION_MEMORY_GIB": "0.25",
    "TAILOR_RESYNC_SECONDS": "30",
    # These scenarios script one trial each; test_automl.py switches to the search.
    "TAILOR_PLANNER": "simple",
}


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        calibration: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = {
            **os.environ,
            **FAST,
            "KUBECONFIG": str(kubeconfig),
            "TAILOR_CALIBRATION_CONFIGMAP": calibration,
            "TAILOR_METRICS_PORT": str(self.metrics_port),
            "TAILOR_HEALTH_PORT": str(self.health_port),
            **(extra or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tailor_operator.main"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        eventually("operator liveness endpoint", self._healthy, timeout=60, interval=0.3)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited ({self.process.returncode}):\n{self.log_tail()}"
            )
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last write, like a node losing power."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as answer:
            return answer.read().decode()  # type: ignore[no-any-return]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
