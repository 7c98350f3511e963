"""A controller-style work queue: one key is never worked on twice at once, keys
added while being worked on are worked on again after, and delayed adds keep the
earliest time. Failures back off per key."""

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K")

Work = Callable[[K], float | None]  # returns "look again after N seconds", or None


class WorkQueue(Generic[K]):
    def __init__(
        self,
        work: Work[K],
        workers: int,
        executor: Executor | None = None,
        max_backoff: float = 300.0,
    ) -> None:
        self._work = work
        self._workers = workers
        self._executor = executor
        self._max_backoff = max_backoff
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}

    def add(self, key: K, delay: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        if delay > 0:
            due = loop.time() + delay
            timer = self._timers.get(key)
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    async def run(self) -> None:
        """Work until cancelled."""
        tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for timer in self._timers.values():
                timer.cancel()

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            again: float | None
            try:
                again = await loop.run_in_executor(self._executor, self._work, key)
                self._failures.pop(key, None)
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                again = min(self._max_backoff, 0.5 * 2 ** min(failures, 20))
                log.exception(
                    "working on %s failed (%d in a row); again in %.1fs", key, failures, again
                )
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif again is not None:
                self.add(key, again)
