"""Exceptions that end an attempt with a contract exit code, and the reason in words."""

from tailor_contract import ExitCode

# argparse's convention for a bad command line, for `predict` (a user's tool, no
# attempt). An attempt's bad configuration exits with the contract's INVALID_CONFIG.
USAGE_EXIT = 2


class ConfigError(Exception):
    """The job's configuration is wrong: the trial config, its hyperparameters, a model
    name, a metric, pretrained weights or the output. The message names the field."""


class AttemptEnded(Exception):
    """Ends the attempt with a contract exit code; the message is the user-facing reason."""

    code: ExitCode = ExitCode.RETRYABLE
    stopped_by = ""

    def __init__(self, reason: str, problems: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = _last_line_of_worker_traceback(reason)
        self.problems = problems or []


def _last_line_of_worker_traceback(reason: str) -> str:
    """A DataLoader worker's exception arrives re-raised with its whole traceback as the
    message; the user needs its last line, without the exception's module path."""
    if "Traceback" not in reason:
        return reason
    last = [line for line in reason.strip().splitlines() if line.strip()][-1]
    name, separator, message = last.partition(": ")
    return message if separator and "." in name and " " not in name else last


class DatasetNotFound(AttemptEnded):
    code = ExitCode.DATASET_NOT_FOUND
    stopped_by = "dataset"


class DatasetCorrupt(AttemptEnded):
    code = ExitCode.DATASET_CORRUPT
    stopped_by = "dataset"


class Diverged(AttemptEnded):
    code = ExitCode.DIVERGED
    stopped_by = "diverged"


class ExportRefused(AttemptEnded):
    """The trained weights cannot be exported faithfully (a format cannot express the model,
    or its outputs differ from PyTorch's past the check's tolerance). Deterministic: another
    attempt from the same checkpoint would be refused again, so it is never retried."""

    code = ExitCode.EXPORT_REFUSED
    stopped_by = "export"

    def __init__(self, reason: str, problems: list[str] | None = None) -> None:
        super().__init__(reason, problems)
        self.reason = f"the export check refused the trained model: {self.reason}"


class Interrupted(AttemptEnded):
    """SIGTERM: the checkpoint is written; another attempt will resume from it."""

    code = ExitCode.RETRYABLE
    stopped_by = "signal"
