"""Declared completions, generated ahead of the tests and concurrently.

pytest runs tests one at a time; an eval suite is thousands of slow calls. Once the items
are collected every declared request (prompt x case x model x sample) is known, so a
background thread runs an asyncio loop that sends them in item order, at most
``concurrency`` at once, and each test waits only for its own completion: tests start as
soon as their answer is in. The producer stays within a window ahead of the tests, so
memory stays flat however large the suite; a test that needs a request the producer has
not reached yet moves it to the front. Identical requests (two evals sharing a prompt) are
sent once. A 429 halves the concurrency and successes grow it back (AIMD), never past the
limit; the client's own retries honour Retry-After.

When the cache has recordings the tests replay from the first job and the producer starts
at the first miss; otherwise, once it has replayed a run of answers, it pauses and the tests
replay in the pytest thread: handing recorded answers across threads costs more than
reading them, since the two threads take turns on one interpreter lock. A test that
replays its own answer replays the next ``REPLAY_AHEAD`` ones too, in one tight loop: in a
loop the interpreter's caches stay warm, and each replay costs half what it costs between
two tests. A test that finds no recording hands its request back, and the producer runs
ahead again.

Under xdist every worker runs a producer over the whole list, starting at its own offset,
and claims each request in the shared cache before sending it: each request is sent once,
by whichever worker gets there first, and the others read the answer from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.cache import cache_key
from ..model.types import ModelCallError
from ..model.wire import ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..model.client import ModelClient
    from ..model.failures import Failure
    from ..model.sender import Sender
    from ..model.types import CallContext, Completion


@dataclass(slots=True)  # one per declared request: no __dict__ each
class Job:
    """One declared request; ``build`` renders it (in the generator's thread)."""

    id: str
    build: Callable[[], tuple[str, dict[str, Any], CallContext, Any]] | None
    index: int = 0
    done: bool = False  # set under the generator's condition
    started: bool = False
    completion: Completion | None = None
    error: BaseException | None = None
    remote: bool = False  # another worker claimed it: read it from the cache
    request: tuple[str, dict[str, Any], CallContext, Any] | None = None
    key: str | None = None  # the request's cache key, computed once
    handed_back: bool = False  # a test found no recording: the producer must send it


# Replays in a row after which the producer leaves replaying to the tests (see above).
REPLAYS_BEFORE_PAUSE = 32
# Answers a replaying test replays ahead for the next tests (held until they take them).
REPLAY_AHEAD = 64


class AdaptiveLimiter:
    """At most ``limit`` calls in flight; halves on a 429, grows by one per window of
    successes, never above ``maximum``."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self.peak = 0
        self._successes = 0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def __aenter__(self) -> None:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
            self.peak = max(self.peak, self.active)

    async def __aexit__(self, *exc: object) -> None:
        cond = self._condition()
        async with cond:
            self.active -= 1
            cond.notify_all()

    def rate_limited(self) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    def succeeded(self) -> None:
        if self.limit < self.maximum:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit += 1
                self._successes = 0


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    errors: int = 0
    sent: int = 0
    replayed: int = 0
    cost: float = 0.0
    helper: bool = False  # sent from a helper process (sender.py)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def line(self) -> str:
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        helped = "; sent from a helper process" if self.helper and self.sent else ""
        return (
            f"generated {self.done}/{self.total} declared completions in {self.elapsed:.1f}s "
            f"({rate:.1f}/s; {self.sent} sent, {self.replayed} replayed, {self.errors} errors"
            f", ${self.cost:.4f}{helped})"
        )


class CompletionGenerator:
    """Runs the producer thread; ``result(job_id)`` is what a test's fixture calls.

    ``hold=True`` (serial runs) keeps each completion in memory until its test takes it,
    with at most ``window`` started-but-untaken jobs. ``hold=False`` (xdist) keeps none:
    results live in the shared cache, every worker produces the whole list from its own
    ``offset``, and claims in the cache make each request go out once.
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        concurrency: int = 32,
        hold: bool = True,
        offset: float = 0.0,
        sender: Sender | None = None,
    ) -> None:
        self.client = client
        self.sender = sender
        self.limiter = AdaptiveLimiter(concurrency)
        self.hold = hold
        self.window = 4 * concurrency if hold else None
        self.offset = offset
        self.progress = Progress()
        self._jobs: dict[str, Job] = {}
        self._order: list[Job] = []
        self._by_request: dict[str, Job] = {}
        self._followers: dict[str, list[Job]] = {}
        self._urgent: deque[Job] = deque()
        self._started = 0
        self._taken = 0
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)  # one for all jobs: memory stays flat
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._replay_streak = 0
        self._paused = False  # the tests replay their own answers (see the module's docstring)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def start(self, jobs: list[Job], *, replay_first: bool = False) -> None:
        """``replay_first`` (the cache has recordings): the tests replay from the first
        job, and the producer starts only when one finds no recording."""
        first = int(len(jobs) * self.offset) if jobs else 0
        self._order = jobs[first:] + jobs[:first]
        for index, job in enumerate(self._order):
            job.index = index
            self._jobs[job.id] = job
        self.progress = Progress(total=len(jobs), helper=self.sender is not None)
        if replay_first and self.hold:
            self._paused = True
        elif jobs:
            self._start_producer()

    def _start_producer(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=asyncio.run,
                args=(self._produce(),),
                name="modelopt-generate",
                daemon=True,
            )
            self._thread.start()

    def result(self, job_id: str) -> Completion:
        """The job's completion, waiting for it (and putting it first if not yet started)."""
        job = self._jobs[job_id]
        with self._lock:
            self._taken += 1
            local = not job.started and self._paused and self.hold
            if local:
                job.started = True
            elif not job.started:
                self._urgent.append(job)
                self._start_producer()  # none yet if the tests were replaying
        if local:
            replayed = self._replay_here(job)
            if replayed is not None:
                self._replay_ahead(job)
                return replayed
        if not (job.done and self._paused):  # a paused producer has nothing to hear
            self._poke()  # this job is urgent, or the producer's window moved
        with self._finished:
            self._finished.wait_for(lambda: job.done)
        if job.error is not None:
            raise job.error
        if job.completion is None:
            assert job.request is not None
            api, body, context, _ = job.request
            return self.client.call(api, body, context, prepared=True)  # from the cache
        completion, job.completion = job.completion, None  # memory stays flat
        return completion

    def _replay_here(self, job: Job, *, hold: bool = False) -> Completion | None:
        """Replay the job's answer in this (the test's) thread; None: it hands the job back
        to the producer (urgent, with its request built), which runs ahead again.
        ``hold``: keep the answer on the job, for its test to take."""
        if not self._build(job):
            return None
        assert job.request is not None
        api, body, context, _ = job.request
        job.key, completion = self.client.replay(api, body, context)
        if completion is not None:
            self._count(completion, None)
            with self._finished:
                if hold:
                    job.completion = completion
                job.done = True
            return completion
        with self._lock:
            self._paused, self._replay_streak = False, 0
            job.handed_back = True
            self._urgent.append(job)
            self._start_producer()
        self._poke()  # a running producer sends it now, not when its test asks
        return None

    def _replay_ahead(self, job: Job) -> None:
        """Replay the jobs after this one that nobody started, until one is not recorded."""
        order = self._order
        end = min(len(order), job.index + 1 + min(REPLAY_AHEAD, self.window or REPLAY_AHEAD))
        for later in order[job.index + 1 : end]:
            with self._lock:
                if not self._paused:
                    return
                if later.started:
                    continue
                later.started = True
            if self._replay_here(later, hold=True) is None:
                return  # handed back (or its prompt failed): the producer has it now

    def take_input(self, job_id: str) -> Any:
        """The rendered messages of a job whose result was taken; then forget the job."""
        job = self._jobs.pop(job_id)
        rendered = job.request[3] if job.request is not None else None
        job.request = None
        return rendered

    def stop(self) -> None:
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=30)
        elif self.progress.finished is None:  # every answer was replayed by the tests
            self.progress.finished = time.monotonic()

    # -- the producer thread -------------------------------------------------------------

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _next(self) -> Job | None:
        """The next job to start: an urgent one, else the next in order within the window."""
        with self._lock:
            while self._urgent:
                job = self._urgent.popleft()
                if not job.started or job.handed_back:
                    job.handed_back = False
                    return job
            while not self._paused and self._started < len(self._order):
                job = self._order[self._started]
                if job.started:
                    self._started += 1
                    continue
                if self.window is not None and self._started >= self._taken + self.window:
                    return None
                self._started += 1
                return job
        return None

    def _exhausted(self) -> bool:
        with self._lock:
            return self._started >= len(self._order) and not self._urgent

    async def _produce(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        previous, self.client.on_failure = self.client.on_failure, self._on_failure
        try:
            while not self._stopping:
                self._wake.clear()
                job = self._next()
                if job is None:
                    if self._exhausted():
                        break
                    await self._wake.wait()
                    continue
                job.started = True
                await self.limiter.__aenter__()
                task = asyncio.create_task(self._one(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.client.on_failure = previous
            self.progress.finished = time.monotonic()
            if self.sender is not None:
                await self.sender.close()
            with contextlib.suppress(Exception):  # closing connections must not fail a run
                await self.client.aclose()
            with self._finished:
                for job in self._order:  # stopped early: no test may wait forever
                    if not job.done:
                        job.error = job.error or ModelCallError("client", "generation was stopped")
                        job.done = True
                self._finished.notify_all()

    async def _one(self, job: Job) -> None:
        try:
            await self._generate(job)
        finally:
            await self.limiter.__aexit__()

    def _build(self, job: Job) -> bool:
        """Render the job's request, once: a test that found no recording has already.
        A prompt that does not render becomes that case's error (False)."""
        build, job.build = job.build, None  # it holds the case's state: let it go
        if job.request is not None:
            return True
        try:
            assert build is not None
            job.request = build()
        except Exception as exc:
            self._finish(job, None, exc)
            return False
        return True

    async def _generate(self, job: Job) -> None:
        if not self._build(job):
            return
        assert job.request is not None
        api, body, context, _ = job.request
        key = job.key = job.key or cache_key(ENDPOINTS[api], body, context.sample)
        with self._lock:
            first = self._by_request.setdefault(key, job)
            if first is not job and not first.done:
                self._followers.setdefault(key, []).append(job)
                return
        if first is not job:
            self._settle(first, job)
            return
        # Claims only matter when other processes share the cache (xdist workers).
        cache = None if self.hold else self.client.cache
        claimed = cache is None or not cache.writes_enabled or cache.claim(key)
        try:
            if not claimed:  # another worker is sending it; its answer lands in the cache
                assert cache is not None
                await asyncio.to_thread(cache.wait_for, key, self.client.timeout * 3)
                self._finish(job, None, None)
                return
            try:
                completion = await self.client.acall(
                    api, body, context, prepared=True, key=key, sender=self.sender, owned_loop=True
                )
            except ModelCallError as exc:
                self._finish(job, None, exc)
            else:
                self.limiter.succeeded()
                self._finish(job, completion if self.hold else None, None, completion)
        finally:
            if claimed and cache is not None:
                cache.release(key)

    def _finish(
        self,
        job: Job,
        completion: Completion | None,
        error: BaseException | None,
        seen: Completion | None = None,
    ) -> None:
        job.completion, job.error = completion, error
        counted = completion or seen
        self._count(counted, error)
        if self.hold:
            with self._lock:
                if error is None and counted is not None and counted.cached:
                    self._replay_streak += 1
                    self._paused = self._replay_streak >= REPLAYS_BEFORE_PAUSE
                else:
                    self._paused, self._replay_streak = False, 0
        if job.key is not None:
            with self._lock:
                followers = self._followers.pop(job.key, [])
            for follower in followers:
                self._settle(job, follower)
        with self._finished:
            job.done = True
            self._finished.notify_all()

    def _count(self, counted: Completion | None, error: BaseException | None) -> None:
        """Progress, from both threads: under the lock."""
        progress = self.progress
        with self._lock:
            progress.done += 1
            if error is not None:
                progress.errors += 1
            elif counted is not None:
                progress.replayed += counted.cached
                progress.sent += not counted.cached
                progress.cost += counted.cost or 0.0

    def _settle(self, first: Job, follower: Job) -> None:
        """A duplicate request shares the first one's answer (before anyone takes it)."""
        follower.error = first.error
        follower.completion = first.completion
        with self._lock:
            self.progress.done += 1
        with self._finished:
            follower.done = True
            self._finished.notify_all()

    def _on_failure(self, failure: Failure) -> None:
        if failure.kind == "rate_limit":
            self.limiter.rate_limited()
