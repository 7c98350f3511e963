"""Writes the attempt's summary where Kubernetes reads the termination message."""

import logging
import os
from pathlib import Path

from tailor_contract import TERMINATION_MESSAGE_PATH, AttemptResult

log = logging.getLogger(__name__)


def termination_path() -> Path:
    return Path(os.environ.get("TAILOR_TERMINATION_LOG", TERMINATION_MESSAGE_PATH))


def write_termination_message(result: AttemptResult) -> None:
    """Best effort: an unwritable path (a laptop, a test) must not turn success into a crash."""
    path = termination_path()
    try:
        path.write_text(result.to_termination_message(), encoding="utf-8")
    except OSError as error:
        log.warning("cannot write the termination message to %s: %s", path, error)
