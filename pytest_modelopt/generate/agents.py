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
agents, only of running them and handing each result to its test. The order, the window,
the front of the queue and the loop are the declared completions' too, so they live in
``schedule.py``; this module says what one agent job does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schedule import Scheduler

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


@dataclass(slots=True)
class AgentJob:
    """One agent case; ``run`` returns its result (it never raises for the run's own
    failures: they are part of the result)."""

    id: str
    run: Callable[[], Awaitable[Any]] | None
    index: int = 0
    started: bool = False  # set under the schedule's lock
    done: bool = False  # set under the schedule's condition
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
        self.schedule: Scheduler[AgentJob] = Scheduler(
            concurrency=self.concurrency,
            window=self.window,
            name="modelopt-agents",
            run=self._one,
            stopped=lambda: RuntimeError("the agent runs were stopped"),
            around=self._closing,
        )

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def start(self, jobs: list[AgentJob]) -> None:
        for job in jobs:
            self._jobs[job.id] = job
        self.schedule.order_jobs(list(jobs))
        if jobs:
            self.schedule.start()

    def result(self, job_id: str) -> Any:
        """The job's result, waiting for it (and putting it first if not yet started)."""
        job = self._jobs.pop(job_id)
        self.schedule.ask(job)
        self.schedule.poke()  # the window moved, or this job is urgent
        self.schedule.wait(job)
        if job.error is not None:
            raise job.error
        result, job.result = job.result, None  # memory stays flat
        return result

    def stop(self) -> None:
        self.schedule.stop()

    # -- the pool's thread ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _closing(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._close is not None:
                with contextlib.suppress(Exception):  # closing connections must not fail a run
                    await self._close()

    async def _one(self, job: AgentJob, urgent: bool) -> None:
        run, job.run = job.run, None  # it holds the case: let it go once run
        try:
            assert run is not None
            job.result = await run()
        except Exception as exc:  # the job's own code failed: that case's error
            job.error = exc
        finally:
            self.schedule.finish(job)
