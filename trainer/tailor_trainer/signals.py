"""SIGTERM (Kubernetes stopping the pod) and SIGINT become a flag the loop polls.

The handler does no work itself: the loop finishes its step, checkpoints and exits
with the retryable code, well within the pod's grace period.
"""

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def _handle(self, number: int, _: FrameType | None) -> None:
        if not self._event.is_set():
            self.signal_name = signal.Signals(number).name
            # Logging from a handler is safe enough here: it only runs between bytecodes.
            log.warning("%s received: checkpointing and stopping", self.signal_name)
        self._event.set()

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                number: signal.signal(number, self._handle)
                for number in (signal.SIGTERM, signal.SIGINT)
            }
        return self

    def uninstall(self) -> None:
        """Put the previous handlers back (a run inside a longer-lived process, a test)."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
