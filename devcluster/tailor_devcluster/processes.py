"""Starts and stops the cluster's server processes.

Each child asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG),
so a crashed or SIGKILLed test run leaves nothing behind. SIGKILL, not SIGTERM:
kube-apiserver's graceful shutdown can hang once etcd is gone, and an orphaned
server's data is throwaway anyway.
"""

import contextlib
import ctypes
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # Also leave the parent's process group, so a Ctrl-C in a terminal reaches the
    # parent alone, which then stops the children in order.
    os.setpgid(0, 0)


class ProcessFailed(RuntimeError):
    """A server exited or never became ready; the message carries its log's tail."""


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ProcessFailed(
                f"{self.name} exited with code {code}; last lines of {self.log}:\n{self.log_tail()}"
            )


@dataclass
class Supervisor:
    """Owns every process it started; `stop_all` stops them newest first."""

    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                preexec_fn=_die_with_parent,
            )
        process = ManagedProcess(name, popen, log)
        self.processes.append(process)
        return process

    def stop(self, process: ManagedProcess, grace_seconds: float = 10.0) -> None:
        if process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(signal.SIGTERM)
            try:
                process.popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self, grace_seconds: float = 10.0) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process, grace_seconds)

    def check_all_alive(self) -> None:
        for process in self.processes:
            process.check_alive()


def wait_until(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    processes: Sequence[ManagedProcess] = (),
    interval: float = 0.1,
) -> None:
    """Polls `ready` until true; fails early, with the log, if a process it depends on died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for process in processes:
            process.check_alive()
        try:
            if ready():
                return
        except Exception as error:  # a server that is still starting refuses connections
            last_error = error
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name} ({p.log}):\n{p.log_tail()}" for p in processes)
    raise ProcessFailed(f"{what} not ready after {timeout:.0f}s (last error: {last_error})\n{logs}")


def answers_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """A readiness probe: GET `url` answers 200 (a refused connection raises)."""
    with urllib.request.urlopen(url, context=context, timeout=2) as response:
        return bool(response.status == 200)
