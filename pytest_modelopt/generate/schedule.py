"""The one schedule of work run ahead of the tests: declared completions and agent cases.

Both are known once the items are collected, are slow, and are independent, so a
background thread's asyncio loop runs them in item order while pytest runs the tests one
at a time. The rules are the same for both, so they live here once:

- at most ``concurrency`` jobs in progress at once;
- within a ``window`` of jobs ahead of the results the tests have taken (memory stays
  flat, and a session stopped early has not run far ahead); ``None``: no window (xdist
  workers, whose results live in a shared cache, not in memory);
- a test that asks for a job nobody started moves it to the front (``urgent``), so each
  test waits only for its own job;
- each job starts once (an agent's tools have side effects; a request is paid for), except
  one a test handed back (``again``: it tried the job itself and could not finish it);
- the loop ends when every job has started and none is in progress, or at ``stop``;
  then every job not done fails with the ``stopped`` error, so no test waits forever.

What one job does is the caller's (``run``): the schedule knows nothing of models or
agents. ``run`` sees to it that its job is marked done (``finish``, or the caller's own
code under ``finished``) whatever happens; a job still not done when the loop ends fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager


class Scheduled(Protocol):
    """What the schedule reads and writes on a job (the job's own dataclass holds it)."""

    index: int
    started: bool  # written under the schedule's lock
    done: bool  # written under the schedule's condition
    error: BaseException | None


J = TypeVar("J", bound=Scheduled)


class Scheduler(Generic[J]):
    """The queue, the window, the urgent rule and the loop that runs the jobs.

    ``run(job, urgent)``: one job's work, awaited in the loop (``urgent``: a test waits for
    it). ``around``: entered in the loop before the first job and left after the last (the
    caller's clients live there). ``stopped``: the error of a job never done.
    ``lock`` guards the schedule and, for the caller, its own state beside it;
    ``finished``, on the same lock, is notified when a job is done: one condition for all
    jobs, so memory stays flat."""

    def __init__(
        self,
        *,
        concurrency: int,
        window: int | None,
        name: str,
        run: Callable[[J, bool], Awaitable[None]],
        stopped: Callable[[], BaseException],
        around: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.window = window
        self.name = name
        self._run = run
        self._stopped = stopped
        self._around = around
        self.order: list[J] = []
        self.paused = False  # under the lock: no job in order starts (urgent ones still do)
        self.lock = threading.Lock()
        self.finished = threading.Condition(self.lock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._urgent: deque[tuple[J, bool]] = deque()  # (job, again)
        self._started = 0  # next job in order to look at
        self._taken = 0  # results the tests have asked for
        self._running = 0  # jobs in progress (the loop's tasks)
        self._wake: asyncio.Event | None = None
        self._stopping = False

    def order_jobs(self, jobs: list[J]) -> None:
        """The jobs, in the order they run (the tests' order, or a worker's rotation)."""
        self.order = jobs
        for index, job in enumerate(jobs):
            job.index = index

    def start(self) -> None:
        """Start the loop's thread, once."""
        if self.thread is None:
            self.thread = threading.Thread(
                target=asyncio.run, args=(self._loop(),), name=self.name, daemon=True
            )
            self.thread.start()

    def ask(self, job: J, *, here: bool = False) -> bool:
        """A test asks for the job: the window moves on, and a job nobody started goes to
        the front. ``here``: the test may run the job itself if nobody started it and the
        schedule is paused; True when it must (the job is then started). The caller pokes
        the loop (``poke``) unless it knows the loop has nothing to hear."""
        with self.lock:
            self._taken += 1
            if job.started:
                return False
            if here and self.paused:
                job.started = True
                return True
            self._urgent.append((job, False))
            self.start()  # none yet if the tests were running the jobs themselves
        return False

    def again(self, job: J) -> None:
        """A test could not finish the job it started: the loop runs it, first."""
        with self.lock:
            self._urgent.append((job, True))
            self.start()
        self.poke()

    def wait(self, job: J) -> None:
        with self.finished:
            self.finished.wait_for(lambda: job.done)

    def finish(self, job: J) -> None:
        with self.finished:
            job.done = True
            self.finished.notify_all()

    def poke(self) -> None:
        """Wake the loop (from any thread): a job is urgent, or the window moved."""
        loop, wake = self.loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.poke()
        if self.thread is not None:
            self.thread.join(timeout=30)

    # -- the loop's thread ---------------------------------------------------------------

    def _next(self) -> tuple[J, bool] | None:
        """An urgent job (a test waits for it), else the next in order within the window;
        and whether it is urgent."""
        with self.lock:
            while self._urgent:
                job, again = self._urgent.popleft()
                if again or not job.started:
                    job.started = True
                    return job, True
            while not self.paused and self._started < len(self.order):
                job = self.order[self._started]
                if job.started:
                    self._started += 1
                    continue
                if self.window is not None and self._started >= self._taken + self.window:
                    return None
                self._started += 1
                job.started = True
                return job, False
        return None

    def _exhausted(self) -> bool:
        with self.lock:
            return self._started >= len(self.order) and not self._urgent

    async def _loop(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            if self._around is None:
                await self._produce(self._wake)
            else:
                async with self._around():
                    await self._produce(self._wake)
        finally:
            with self.finished:
                for job in self.order:  # stopped early: no test may wait forever
                    if not job.done:
                        job.error = job.error or self._stopped()
                        job.done = True
                self.finished.notify_all()

    async def _produce(self, wake: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping:
            wake.clear()
            picked = self._next() if self._running < self.concurrency else None
            if picked is None:
                if self._running == 0 and self._exhausted():
                    break
                await wake.wait()  # a task ending, a test asking, or stop wakes it
                continue
            self._running += 1
            task = asyncio.create_task(self._one(*picked))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, job: J, urgent: bool) -> None:
        try:
            await self._run(job, urgent)
        finally:
            self._running -= 1
            wake = self._wake
            if wake is not None:
                wake.set()
