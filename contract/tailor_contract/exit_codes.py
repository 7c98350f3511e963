"""Exit codes: how a trainer process tells the operator what happened.

Numbers follow sysexits(3) where one fits, and stay clear of 126-128+N, which
shells and the kernel use for "cannot execute" and "killed by signal N".
Any code not listed here is an unexplained crash: retried, never charged.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    DATASET_CORRUPT = 65  # EX_DATAERR: the data is there but wrong
    DATASET_NOT_FOUND = 66  # EX_NOINPUT: the annotation file cannot be read
    BUDGET_NOT_ENOUGH = 67  # the budget cannot pay for the cheapest useful search
    DIVERGED = 68  # NaN/inf loss, or no learning at all
    # EX_SOFTWARE: the trained model failed the export's own check (ONNX or TorchScript
    # does not reproduce PyTorch), or the exporter cannot express it. The system's
    # fault, not the job's; the same weights would be refused again.
    EXPORT_REFUSED = 70
    RETRYABLE = 75  # EX_TEMPFAIL: stopped by SIGTERM or a transient fault; resume me
    # EX_CONFIG: the job's own configuration is wrong (an unknown model, a metric the
    # task has not, unreadable pretrained weights, an output another job owns). The
    # user must change the TrainingJob; another attempt would fail the same way.
    INVALID_CONFIG = 78

    @property
    def is_permanent_failure(self) -> bool:
        """A failure that another attempt would repeat, so it is never retried."""
        return self in _PERMANENT


_PERMANENT = frozenset(
    {
        ExitCode.DATASET_CORRUPT,
        ExitCode.DATASET_NOT_FOUND,
        ExitCode.BUDGET_NOT_ENOUGH,
        ExitCode.DIVERGED,
        ExitCode.EXPORT_REFUSED,
        ExitCode.INVALID_CONFIG,
    }
)


def describe_exit(code: int) -> str:
    """A short name for any exit code, listed or not."""
    try:
        return ExitCode(code).name
    except ValueError:
        if code > 128:
            return f"KILLED_BY_SIGNAL_{code - 128}"
        return f"UNEXPLAINED_{code}"
