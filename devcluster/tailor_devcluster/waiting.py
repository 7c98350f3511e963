"""Waiting for the cluster to reach a state, for tests and scripts."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NeverHappened(AssertionError):
    """What was awaited did not happen in time; the message says what was last seen."""


def eventually(
    what: str, probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.2
) -> T:
    """Calls `probe` until it returns something other than None or False, and returns it."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as error:  # e.g. 404 before the object exists
            value, last = None, error
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise NeverHappened(f"{what}: not seen within {timeout:.0f}s (last error: {last})")
        time.sleep(interval)
