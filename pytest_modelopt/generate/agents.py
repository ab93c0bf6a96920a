"""Agent cases, run ahead of their tests and concurrently (serial runs).

An ``agent=`` eval's case is a whole agent run: several model calls, the user's tools
between them. Run inside each test, one after another, 200 cases of three 100 ms calls
take a minute. They are independent and known once the items are collected, so a
background thread's asyncio loop runs them in item order, at most ``concurrency`` runs
at once (a run makes one model call at a time, so that is as many calls in flight as
declared prompts get), within a window ahead of the tests (memory stays flat, and a
session stopped early has not run far ahead), and each test waits only for its own case:
a test whose case the pool has not reached moves it to the front.

Every case's run goes once per run: its tools have side effects. That is why xdist
workers do not use the pool: a worker learns which tests are its own only as it gets
them, and running another worker's agents would run their tools twice. Each worker runs
its cases in its tests (``plan.py``), so ``-n N`` runs N at once.

The jobs are opaque coroutines (``plan.agent_run`` builds them): the pool knows nothing of
agents, only of running them and handing each result to its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


@dataclass(slots=True)
class AgentJob:
    """One agent case; ``run`` returns its result (it never raises for the run's own
    failures: they are part of the result)."""

    id: str
    run: Callable[[], Awaitable[Any]] | None
    index: int = 0
    started: bool = False
    done: bool = False  # set under the pool's condition
    result: Any = None
    error: BaseException | None = None  # the pool's own failure (stopped, a bug)


class AgentPool:
    """Runs the jobs in a thread's event loop; ``result(job_id)`` is what a test calls.

    ``close``: awaited in the loop when it ends (the model client's connections there)."""

    def __init__(
        self, *, concurrency: int, close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.window = 4 * self.concurrency
        self._close = close
        self._jobs: dict[str, AgentJob] = {}
        self._order: list[AgentJob] = []
        self._urgent: deque[AgentJob] = deque()
        self._started = 0  # next job in order to look at
        self._taken = 0  # results tests have asked for
        self._running = 0
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def start(self, jobs: list[AgentJob]) -> None:
        for index, job in enumerate(jobs):
            job.index = index
            self._jobs[job.id] = job
        self._order = list(jobs)
        if jobs:
            self._thread = threading.Thread(
                target=asyncio.run, args=(self._produce(),), name="modelopt-agents", daemon=True
            )
            self._thread.start()

    def result(self, job_id: str) -> Any:
        """The job's result, waiting for it (and putting it first if not yet started)."""
        job = self._jobs.pop(job_id)
        with self._lock:
            self._taken += 1
            if not job.started:
                self._urgent.append(job)
        self._poke()  # the window moved, or this job is urgent
        with self._finished:
            self._finished.wait_for(lambda: job.done)
        if job.error is not None:
            raise job.error
        result, job.result = job.result, None  # memory stays flat
        return result

    def stop(self) -> None:
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- the pool's thread ---------------------------------------------------------------

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)

    def _next(self) -> AgentJob | None:
        """An urgent job (a test waits for it), else the next in order within the window."""
        with self._lock:
            while self._urgent:
                job = self._urgent.popleft()
                if not job.started:
                    job.started = True
                    return job
            while self._started < len(self._order):
                job = self._order[self._started]
                if job.started:
                    self._started += 1
                    continue
                if self._started >= self._taken + self.window:
                    return None
                self._started += 1
                job.started = True
                return job
        return None

    def _exhausted(self) -> bool:
        with self._lock:
            return self._started >= len(self._order) and not self._urgent

    async def _produce(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                self._wake.clear()
                job = self._next() if self._running < self.concurrency else None
                if job is None:
                    if self._running == 0 and self._exhausted():
                        break
                    await self._wake.wait()
                    continue
                self._running += 1
                task = asyncio.create_task(self._one(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self._close is not None:
                with contextlib.suppress(Exception):  # closing connections must not fail a run
                    await self._close()
            with self._finished:
                for job in self._order:  # stopped early: no test may wait forever
                    if not job.done:
                        job.error = job.error or RuntimeError("the agent runs were stopped")
                        job.done = True
                self._finished.notify_all()

    async def _one(self, job: AgentJob) -> None:
        run, job.run = job.run, None  # it holds the case: let it go once run
        try:
            assert run is not None
            job.result = await run()
        except Exception as exc:  # the job's own code failed: that case's error
            job.error = exc
        finally:
            self._running -= 1
            with self._finished:
                job.done = True
                self._finished.notify_all()
            if self._wake is not None:
                self._wake.set()
