"""Several GPUs in one pod: one process per GPU, started by the trainer itself.

torchrun would do, but it answers SIGTERM with its own exit code, which breaks the
contract (75 = checkpointed, resume me). This launcher forwards signals to every
rank and exits with rank 0's code, the one that wrote the termination message.
torchrun still works: a process that finds WORLD_SIZE set simply runs as its rank.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import torch

from tailor_contract import AttemptResult, ExitCode, TrialConfig, describe_exit
from tailor_trainer.termination import write_termination_message

log = logging.getLogger(__name__)


def processes_wanted(config: TrialConfig) -> int:
    """GPUs of the attempt; on CPU, TAILOR_CPU_PROCESSES (tests of the DDP path)."""
    if "WORLD_SIZE" in os.environ:
        return 1  # already a rank, started by this launcher or torchrun
    if torch.cuda.is_available():
        return max(1, min(config.gpus, torch.cuda.device_count()))
    return max(1, int(os.environ.get("TAILOR_CPU_PROCESSES", "1")))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def launch(config_path: str, processes: int, started: float) -> int:
    port = _free_port()
    children: list[subprocess.Popen[bytes]] = []
    for rank in range(processes):
        env = dict(
            os.environ,
            WORLD_SIZE=str(processes),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(processes),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            # The monotonic clock is system-wide: ranks count the allowance from our start.
            TAILOR_STARTED_MONOTONIC=repr(started),
        )
        command = [sys.executable, "-m", "tailor_trainer.cli", "run", "--config", config_path]
        children.append(subprocess.Popen(command, env=env))
    log.info("started %d trainer processes", processes)

    def forward(number: int, _: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(number)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = _wait_all(children)
    log.info("trainer processes ended with %s", codes)
    if codes[0] != 0:
        return codes[0]
    failed = [code for code in codes if code != 0]
    # Rank 0 succeeded but another rank crashed: unexplained, never a false success.
    return failed[0] if failed else int(ExitCode.SUCCESS)


def _wait_all(children: list["subprocess.Popen[bytes]"], grace: float = 60.0) -> list[int]:
    """Every child's code. Once one has ended with an error, the others get `grace`
    seconds to end too (a rank waiting in a collective for a dead peer would otherwise
    wait for the collective's timeout), then are killed."""
    failed_at: float | None = None
    while any(child.poll() is None for child in children):
        if failed_at is None and any(child.poll() not in (None, 0) for child in children):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace:
            codes = [child.poll() for child in children]
            for child in children:
                if child.poll() is None:
                    child.kill()
            # Rank 0 may not have written its message: say what is known.
            write_termination_message(
                AttemptResult(
                    exit=describe_exit(1),
                    reason=f"a trainer process failed; exit codes by rank: {codes}",
                )
            )
        time.sleep(0.2)
    # A child killed by signal N reports -N; a shell would say 128 + N, and so do we.
    return [code if code >= 0 else 128 - code for code in (c.returncode for c in children)]
