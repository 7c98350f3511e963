"""The work queue: no key twice at once, nothing lost when a key changes mid-work."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tailor_operator.workqueue import WorkQueue


class Recorder:
    def __init__(self, answers: dict[str, list[float | None]] | None = None, pause: float = 0.0):
        self.calls: list[str] = []
        self.active: set[str] = set()
        self.overlaps = 0
        self.answers = answers or {}
        self.pause = pause
        self.lock = threading.Lock()

    def __call__(self, key: str) -> float | None:
        with self.lock:
            if key in self.active:
                self.overlaps += 1
            self.active.add(key)
            self.calls.append(key)
        time.sleep(self.pause)
        with self.lock:
            self.active.discard(key)
        queue = self.answers.get(key)
        if queue:
            answer = queue.pop(0)
            if answer == -1:
                raise RuntimeError("boom")
            return answer
        return None


async def run_for(queue: WorkQueue[str], seconds: float) -> None:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_key_added_many_times_while_queued_is_worked_once() -> None:
    async def scenario() -> Recorder:
        work = Recorder()
        queue: WorkQueue[str] = WorkQueue(work, workers=4, executor=ThreadPoolExecutor(4))
        for _ in range(10):
            queue.add("a")
        queue.add("b")
        await run_for(queue, 0.2)
        return work

    work = asyncio.run(scenario())
    assert sorted(work.calls) == ["a", "b"]


def test_a_key_added_while_being_worked_on_is_worked_again_after_never_alongside() -> None:
    async def scenario() -> Recorder:
        work = Recorder(pause=0.1)
        queue: WorkQueue[str] = WorkQueue(work, workers=4, executor=ThreadPoolExecutor(4))
        queue.add("a")
        task = asyncio.create_task(queue.run())
        await asyncio.sleep(0.03)  # "a" is being worked on now
        queue.add("a")
        queue.add("a")
        await asyncio.sleep(0.4)
        task.cancel()
        return work

    work = asyncio.run(scenario())
    assert work.calls == ["a", "a"]
    assert work.overlaps == 0


def test_requeue_after_and_backoff_after_a_failure() -> None:
    async def scenario() -> Recorder:
        work = Recorder(answers={"a": [0.05, None], "b": [-1, None]})
        queue: WorkQueue[str] = WorkQueue(work, workers=2, executor=ThreadPoolExecutor(2))
        queue.add("a")
        queue.add("b")
        await run_for(queue, 1.5)  # a failure backs off 1 s the first time
        return work

    work = asyncio.run(scenario())
    assert work.calls.count("a") == 2
    assert work.calls.count("b") == 2


def test_a_delayed_add_keeps_the_earliest_time() -> None:
    async def scenario() -> Recorder:
        work = Recorder()
        queue: WorkQueue[str] = WorkQueue(work, workers=1, executor=ThreadPoolExecutor(1))
        queue.add("a", delay=5)
        queue.add("a", delay=0.05)
        queue.add("a", delay=10)
        await run_for(queue, 0.3)
        return work

    assert asyncio.run(scenario()).calls == ["a"]
