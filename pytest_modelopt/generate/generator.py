"""Declared completions, generated ahead of the tests and concurrently.

pytest runs tests one at a time; an eval suite is thousands of slow calls. Once the items
are collected every declared request (prompt x case x model x sample) is known, so a
background thread runs an asyncio loop that sends them in item order, at most
``concurrency`` at once, and each test waits only for its own completion: tests start as
soon as their answer is in. The producer stays within a window ahead of the tests, so
memory stays flat however large the suite; a test that needs a request the producer has
not reached yet moves it to the front. Identical requests (two evals sharing a prompt) are
sent once. Each attempt, retries included, takes a slot of the :class:`AdaptiveLimiter`,
which follows the server's quota (``model/limiter.py``); the client's retries honour
Retry-After.

When the cache has recordings the tests replay from the first job and the producer starts
at the first miss; otherwise, once it has replayed a run of answers, it pauses and the tests
replay in the pytest thread: handing recorded answers across threads costs more than
reading them, since the two threads take turns on one interpreter lock. A test that
replays its own answer replays the next ``REPLAY_AHEAD`` ones too, in one tight loop: in a
loop the interpreter's caches stay warm, and each replay costs half what it costs between
two tests. A test that finds no recording hands its request back, and the producer runs
ahead again.

Under xdist every worker runs a producer over the whole list, starting at its own offset,
and claims each request in a cache the workers share before sending it: each request is
sent once, by whichever worker gets there first, and the others read the answer from that
cache. With ``--eval-record new`` it is the response cache itself; ``all`` reads no
recording and ``off`` has no cache, so there the workers share a scratch cache that lives
as long as the run (``plan.py``), and a worker reads the answers another sent in this run
whatever the record mode says of recordings. A replay-only run (``none``) sends nothing
and shares nothing: each test replays its own answer.

The order, the window, the front of the queue and the producer's loop are the agent
cases' too (``agents.py``), so they live in ``schedule.py``; this module says what one
declared request is: replayed or sent, once among workers, shared with its duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..costs import money
from ..model.cache import CacheEntry, cache_key
from ..model.limiter import AdaptiveLimiter
from ..model.types import ModelCallError
from ..model.wire import ENDPOINTS
from .schedule import Scheduler

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ..model.cache import ResponseCache
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
    done: bool = False  # set under the schedule's condition
    started: bool = False  # set under the schedule's lock
    completion: Completion | None = None
    error: BaseException | None = None
    remote: bool = False  # another worker claimed it: read it from the cache
    request: tuple[str, dict[str, Any], CallContext, Any] | None = None
    key: str | None = None  # the request's cache key, computed once


# Replays in a row after which the producer leaves replaying to the tests (see above).
REPLAYS_BEFORE_PAUSE = 32
# Answers a replaying test replays ahead for the next tests (held until they take them).
REPLAY_AHEAD = 64


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    errors: int = 0
    sent: int = 0
    replayed: int = 0
    cost: float = 0.0  # the known part
    unpriced: int = 0  # answers with no known price
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
            f", {progress_cost([self])}{helped})"
        )


def progress_cost(progress: list[Progress]) -> str:
    """What the answers cost: ``?`` when none had a known price, ``+?`` when some had none."""
    answers = sum(p.sent + p.replayed for p in progress)
    unpriced = sum(p.unpriced for p in progress)
    known = sum(p.cost for p in progress)
    return money(None if answers and unpriced >= answers else known, unpriced)


class CompletionGenerator:
    """Runs the producer thread; ``result(job_id)`` is what a test's fixture calls.

    ``hold=True`` (serial runs) keeps each completion in memory until its test takes it,
    with at most ``window`` started-but-untaken jobs. ``hold=False`` (xdist) keeps none:
    results live in the ``shared`` cache, every worker produces the whole list from its
    own ``offset``, and claims in that cache make each request go out once. ``shared`` is
    the response cache, or a scratch cache of this run (its answers are then live ones,
    not recordings); None when nothing is sent (a replay-only run).

    At most ``concurrency`` jobs are in progress at once; their attempts share the
    limiter's slots, as many as the server takes.
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        concurrency: int = 32,
        hold: bool = True,
        offset: float = 0.0,
        sender: Sender | None = None,
        shared: ResponseCache | None = None,
    ) -> None:
        self.client = client
        self.sender = sender
        self.concurrency = max(1, concurrency)
        self.limiter = AdaptiveLimiter(concurrency)
        self.hold = hold
        self.shared = None if hold else shared
        self._scratch = self.shared is not None and self.shared is not client.cache
        self.window = 4 * concurrency if hold else None
        self.offset = offset
        self.progress = Progress()
        self._jobs: dict[str, Job] = {}
        self._by_request: dict[str, Job] = {}
        self._followers: dict[str, list[Job]] = {}
        # its ``paused``: the tests replay their own answers (see the module's docstring)
        self.schedule: Scheduler[Job] = Scheduler(
            concurrency=self.concurrency,
            window=self.window,
            name="modelopt-generate",
            run=self._one,
            stopped=lambda: ModelCallError("client", "generation was stopped"),
            around=self._session,
        )
        self._lock = self.schedule.lock  # it guards the progress and the replay streak too
        self._finished = self.schedule.finished
        self._replay_streak = 0
        self._sharing_broken = False  # the shared cache cannot be written: no producing ahead

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def start(self, jobs: list[Job], *, replay_first: bool = False) -> None:
        """``replay_first`` (the cache has recordings): the tests replay from the first
        job, and the producer starts only when one finds no recording."""
        first = int(len(jobs) * self.offset) if jobs else 0
        self.schedule.order_jobs(jobs[first:] + jobs[:first])
        for job in jobs:
            self._jobs[job.id] = job
        self.progress = Progress(total=len(jobs), helper=self.sender is not None)
        if not self.hold and self.shared is not None and not self.shared.writable():
            self._sharing_broken = True  # answers could not be shared: none produced ahead
        if replay_first or self._sharing_broken:
            self.schedule.paused = True
        elif jobs:
            self.schedule.start()

    def result(self, job_id: str) -> Completion:
        """The job's completion, waiting for it (and putting it first if not yet started)."""
        job = self._jobs[job_id]
        local = self.schedule.ask(job, here=True)
        if local:
            replayed = self._replay_here(job)
            if replayed is not None:
                if self.hold:  # under xdist the next jobs may be other workers' tests
                    self._replay_ahead(job)
                return replayed
        if not (job.done and self.schedule.paused):  # a paused producer has nothing to hear
            self.schedule.poke()  # this job is urgent, or the producer's window moved
        self.schedule.wait(job)
        if job.error is not None:
            raise job.error
        if job.completion is None:
            return self._read_shared(job)
        completion, job.completion = job.completion, None  # memory stays flat
        return completion

    def _read_shared(self, job: Job) -> Completion:
        """The answer a worker put in the shared cache (this one or another), read whatever
        the record mode says of reading recordings: it is this run's answer."""
        assert job.request is not None
        api, body, context, _ = job.request
        if self.shared is not None:
            _, completion = self.client.replay(api, body, context, job.key, cache=self.shared)
            if completion is not None:
                completion.cached = not self._scratch  # a scratch answer is a live one
                return completion
        # a replay-only run (the client replays it), or an entry that does not parse
        return self.client.call(api, body, context, prepared=True)

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
            self.schedule.paused, self._replay_streak = self._sharing_broken, 0
        self.schedule.again(job)  # a running producer sends it now, not when its test asks
        return None

    def _replay_ahead(self, job: Job) -> None:
        """Replay the jobs after this one that nobody started, until one is not recorded."""
        order = self.schedule.order
        end = min(len(order), job.index + 1 + min(REPLAY_AHEAD, self.window or REPLAY_AHEAD))
        for later in order[job.index + 1 : end]:
            with self._lock:
                if not self.schedule.paused:
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
        had_producer = self.schedule.thread is not None
        self.schedule.stop()
        if not had_producer and self.progress.finished is None:
            self.progress.finished = time.monotonic()  # every answer was replayed by the tests

    # -- the producer thread -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        """The producer's loop: 429s met elsewhere reach its limiter; its clients close."""
        previous, self.client.on_failure = self.client.on_failure, self._on_failure
        try:
            yield
        finally:
            self.client.on_failure = previous
            self.progress.finished = time.monotonic()
            if self.sender is not None:
                await self.sender.close()
            with contextlib.suppress(Exception):  # closing connections must not fail a run
                await self.client.aclose()

    async def _one(self, job: Job, urgent: bool) -> None:
        """Its priority for the limiter's slots: an urgent job (a test waits) first."""
        await self._generate(job, -1.0 if urgent else float(job.index))

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

    async def _generate(self, job: Job, priority: float) -> None:
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
        if self.shared is None:
            await self._send(job, key, priority)
        else:
            await self._send_once_among_workers(job, key, priority, self.shared)

    async def _send(self, job: Job, key: str, priority: float) -> Completion | None:
        """Send the job's request (or replay it); its answer, None if it failed."""
        assert job.request is not None
        api, body, context, _ = job.request
        try:
            completion = await self.client.acall(
                api,
                body,
                context,
                prepared=True,
                key=key,
                sender=self.sender,
                owned_loop=True,
                limiter=self.limiter,
                priority=priority,
            )
        except ModelCallError as exc:
            self._finish(job, None, exc)
            return None
        kept = self.hold
        if not self.hold:  # before the job is done: its test reads it from the shared cache
            kept = not self._shared_kept(key, job, completion)
        self._finish(job, completion if kept else None, None, completion)
        return completion

    def _shared_kept(self, key: str, job: Job, completion: Completion) -> bool:
        """Whether the answer is in the cache the workers share. When it cannot be written
        (a full disk) the answer stays on the job, for its test if it runs here: a paid
        answer is never thrown away; and this worker stops producing ahead, since answers
        it cannot share would be paid for twice."""
        if self.shared is None:  # replay only (none): nothing to share, the test replays
            return True
        try:
            if self._scratch:
                self.shared.put(key, _entry(job, completion))
            elif self.client.cache_errors:
                raise OSError(self.client.cache_errors[-1])
        except OSError:
            with self._lock:
                self.schedule.paused = True  # only what a test asks for from now on
                self._sharing_broken = True
            return False
        return True

    async def _send_once_among_workers(
        self, job: Job, key: str, priority: float, shared: ResponseCache
    ) -> None:
        """Claim the request in the cache the workers share, then send it; if another
        worker holds the claim, wait for its answer there. A claim that goes without an
        answer (that worker's call failed) is taken over: the request is this worker's
        to try."""
        for _ in range(3):
            if shared.exists(key):  # another worker answered it (or, in "new", a recording)
                self._finish(job, None, None, replayed=not self._scratch)
                return
            if shared.claim(key):
                break
            await asyncio.to_thread(shared.wait_for, key, self.client.timeout * 3)
        else:  # a claim held past three waits: its owner hangs; send it regardless
            await self._send(job, key, priority)
            return
        try:
            if shared.exists(key):  # answered between the look and the claim
                self._finish(job, None, None, replayed=not self._scratch)
                return
            await self._send(job, key, priority)
        finally:
            shared.release(key)

    def _finish(
        self,
        job: Job,
        completion: Completion | None,
        error: BaseException | None,
        seen: Completion | None = None,
        *,
        replayed: bool = False,
    ) -> None:
        """``replayed``: the answer is in the response cache, for its test to replay."""
        job.completion, job.error = completion, error
        counted = completion or seen
        self._count(counted, error)
        with self._lock:
            if error is None and (replayed or (counted is not None and counted.cached)):
                self._replay_streak += 1
                self.schedule.paused = self._replay_streak >= REPLAYS_BEFORE_PAUSE
            else:
                self.schedule.paused, self._replay_streak = self._sharing_broken, 0
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
                progress.unpriced += counted.cost is None

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
        """A call outside the generator (a test's own, a judge's) met a 429: the server
        is full with what the generator has in flight."""
        loop = self.schedule.loop
        if failure.kind == "rate_limit" and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.limiter.refused_elsewhere)


def _entry(job: Job, completion: Completion) -> CacheEntry:
    """A live answer as the scratch cache keeps it, for the other workers to read."""
    assert job.request is not None
    api, body, context, _ = job.request
    return CacheEntry(
        endpoint=ENDPOINTS[api],
        sample=context.sample,
        request=body,
        response=completion.response or {},
        latency_s=completion.latency_s,
        created_at=time.time(),
        cost_usd=completion.cost,
        cost_recorded=True,
    )
