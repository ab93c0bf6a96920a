"""The plan for declared completions: which tests need one, how each request is built,
and how they are produced.

This is the one place that answers "where does ``completion`` come from?":

1. Collection: each eval with a prompt reports its declared cases
   (:meth:`Planner.collected`); once enough are known, the helper process that will send
   them starts warming up, so its ``import openai`` overlaps collection.
2. End of collection: :meth:`Planner.start` gets one :class:`Declared` per test that
   needs the completion (it asks for the ``completion`` fixture, or its eval declares
   graders), builds a :class:`~.generator.Job` for each and starts the generator in the
   mode that fits the process:

   - **serial** (no xdist): the generator holds each answer until its test takes it;
     with recordings in the cache the tests replay from the first job and the producer
     starts on the first miss (``replay_first``);
   - **xdist worker**: every worker produces the whole list from its own offset and
     shares answers through a cache, claiming each request there before sending it, so a
     request goes out once, and as many at once as serially, whatever the record mode:
     with ``--eval-record new`` the response cache; with ``off`` (no cache) and ``all``
     (which reads no recording, so cannot tell a worker's fresh answer from an old one)
     a scratch cache under ``.modelopt/inflight/<run id>`` that lives as long as the run
     (nothing from an earlier run is read, nothing is kept); with ``none`` nothing is
     sent, and each test replays its own answer;
   - **Batch API** (``--eval-batch``): first every uncached request goes through OpenAI's
     Batch API, filling the cache; then the tests replay.

   Requests are sent from a helper process (``model/sender.py``) when ``--eval-sender``
   says so (``auto``: 2+ cores and 16+ requests, without xdist).
3. The test: the ``completion`` fixture takes its job's answer
   (:meth:`CompletionGenerator.result`), or, for a test outside the plan, builds and
   sends its request there and then (:func:`declared_request`).

An ``agent=`` eval's completion is an agent's whole run on the case (:func:`agent_run`).
In a serial run the :class:`~.agents.AgentPool` runs them ahead of the tests, at most
``concurrency`` at once; an xdist worker runs each of its cases in its test (a worker
must not run another's agents: their tools have side effects), so ``-n N`` runs N.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.cache import ResponseCache
from ..model.types import AgentError, CallContext
from ..model.wire import ENDPOINTS
from .agents import AgentJob, AgentPool
from .generator import CompletionGenerator, Job, Progress, progress_cost

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from ..collect.prompts import Prompt
    from ..collect.spec import EvalParam
    from ..config import Settings
    from ..model.agents_sdk import CaseRun
    from ..model.client import ModelClient
    from ..model.sender import Sender

Request = tuple[str, dict[str, Any], CallContext, Any]  # (api, body, context, messages)


@dataclass(frozen=True, slots=True)
class Declared:
    """A test that needs its eval's declared completion."""

    nodeid: str
    param: EvalParam
    case_id: str
    case: Mapping[str, Any]


@dataclass(frozen=True)
class Worker:
    """This process as one of ``count`` xdist workers."""

    index: int
    count: int

    @classmethod
    def from_workerinput(cls, workerinput: Mapping[str, Any]) -> Worker:
        index = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
        return cls(index, max(int(workerinput.get("workercount", 1)), 1))


def needs_completion(param: EvalParam, fixturenames: Sequence[str], skipped: bool) -> bool:
    """Whether a test will take the declared completion: it asks for it, or its eval's
    graders grade it; never for a skipped test, an eval whose prompt is not written or an
    agent eval (its prompt is the agent's input, not a request of its own)."""
    spec = param.spec
    if spec.prompt_path is None or spec.pending_reason is not None or skipped:
        return False
    if spec.agent is not None:  # the agent runs in the test: its tools are the test's code
        return False
    return "completion" in fixturenames or bool(spec.graders)


def needs_agent_run(param: EvalParam, fixturenames: Sequence[str], skipped: bool) -> bool:
    """Whether a test will take its ``agent=`` eval's run: as ``needs_completion``."""
    spec = param.spec
    if spec.agent is None or spec.pending_reason is not None or skipped:
        return False
    return "completion" in fixturenames or bool(spec.graders)


def agent_run(
    client: ModelClient,
    prompt: Callable[[Path, str | None], Prompt],
    param: EvalParam,
    case_id: str,
    case: Mapping[str, Any],
) -> Callable[[], Awaitable[CaseRun]]:
    """The ``agent=`` eval's run on this case, as a coroutine to start: the agent's input
    is the declared prompt rendered with the case, else the case's ``input`` field. What
    goes wrong (no input, a prompt that does not render, the agent) is in its result."""
    spec = param.spec
    assert spec.agent is not None
    agent = spec.agent
    api = spec.agent_api
    context = CallContext(ENDPOINTS[api], param.model, param.sample, spec.name, case_id)

    async def run() -> CaseRun:
        # the Agents SDK (and openai, ~1 s): only once an agent case runs
        from ..model.agents_sdk import CaseRun, run_case

        try:
            agent_input: Any
            if spec.prompt_path is not None:
                agent_input = prompt(spec.prompt_path, spec.prompt).render(case).messages
            elif isinstance(case.get("input"), (str, list)):
                agent_input = case["input"]
            else:
                raise AgentError(
                    "agent",
                    f"agent= runs the agent on the case's 'input' field (a string or a list "
                    f"of messages), and case {case_id} has none: add it to the dataset, or "
                    "render the input with prompt=...",
                )
        except Exception as exc:  # a prompt that does not render: that case's error
            return CaseRun(None, [], None, exc)
        return await run_case(client, context, agent, agent_input, api=api)

    return run


def declared_request(
    client: ModelClient,
    prompt: Callable[[Path, str | None], Prompt],
    param: EvalParam,
    case_id: str,
    case: Mapping[str, Any],
) -> Request:
    """Render the eval's prompt for this case into the request it sends (hook applied)."""
    spec = param.spec
    assert spec.prompt_path is not None
    rendered = prompt(spec.prompt_path, spec.prompt).render(
        case, spec.params, f"eval {spec.name} params"
    )
    context = CallContext(
        endpoint=rendered.api,
        model=param.model,
        sample=param.sample,
        eval=spec.name,
        case_id=case_id,
    )
    body = {"model": param.model, **rendered.request()}
    body, context = client.prepare(rendered.api, body, context)
    return rendered.api, body, context, rendered.messages


class Planner:
    """One run's plan: the sender warmed up during collection, then the generator."""

    def __init__(
        self,
        settings: Settings,
        client: Callable[[], ModelClient],
        prompt: Callable[[Path, str | None], Prompt],
        run_dir: Path,
    ) -> None:
        self.settings = settings
        self._client = client
        self._prompt = prompt
        self._run_dir = run_dir
        self.generator: CompletionGenerator | None = None
        self.agents: AgentPool | None = None  # agent= cases, run ahead (serial runs)
        self.sender: Sender | None = None  # warmed up during collection
        self.declared_so_far = 0
        self.worker_progress: list[Progress] = []  # from xdist workers, on the controller
        self._has_recordings: bool | None = None
        self._in_worker = False  # an xdist worker: the scratch cache is not its to delete

    def collected(self, declared: int, *, worker: bool) -> None:
        """An eval with ``declared`` completions to come was collected. Start the helper
        process that will send them once as many are known as ``auto`` uses it for.

        With recordings in the cache the helper starts on the first miss instead: a run
        that replays everything then never pays for it.
        """
        if worker:
            self._in_worker = True
            return
        self.declared_so_far += declared
        wanted = self.settings.record != "none" and self._wants_sender(self.declared_so_far)
        if self.sender is None and wanted:
            self.sender = self._client().sender()
            if not self.has_recordings():
                self.sender.warm_up()

    def has_recordings(self) -> bool:
        """Whether this run reads a cache that holds recordings (looked at once). Then the
        tests replay before anything is sent, and nothing that sends starts ahead."""
        if self._has_recordings is None:
            cache = self._client().cache
            self._has_recordings = cache is not None and cache.reads and cache.has_entries()
        return self._has_recordings

    def _wants_sender(self, requests: int) -> bool:
        """A helper process pays off once there is a second core and enough requests."""
        setting = self.settings.sender
        return setting == "process" or (
            setting == "auto" and requests >= 16 and (os.cpu_count() or 1) > 1
        )

    def jobs(self, declared: Sequence[Declared]) -> list[Job]:
        client = self._client()
        return [
            Job(
                d.nodeid,
                functools.partial(
                    declared_request, client, self._prompt, d.param, d.case_id, d.case
                ),
            )
            for d in declared
        ]

    def start(self, jobs: list[Job], worker: Worker | None) -> CompletionGenerator | None:
        """Start producing the jobs' completions in the mode that fits this process."""
        if not jobs:
            return None
        settings, client = self.settings, self._client()
        if worker is None:
            sender = None
            if self._wants_sender(len(jobs)):
                sender = self.sender or client.sender()
            generator = CompletionGenerator(client, concurrency=settings.concurrency, sender=sender)
        else:
            self._in_worker = True
            shared = None  # "none": nothing is sent, so nothing to share
            if settings.record == "new":
                shared = client.cache
            elif settings.record in ("all", "off"):
                shared = self.scratch_cache()
            generator = CompletionGenerator(
                client,
                concurrency=settings.concurrency,
                hold=False,
                offset=worker.index / worker.count,
                shared=shared,
            )
        self.generator = generator
        generator.start(jobs, replay_first=self.has_recordings())
        return generator

    def start_agents(self, declared: Sequence[Declared], worker: Worker | None) -> AgentPool | None:
        """Run the ``agent=`` cases ahead of their tests (a serial run; see the module's
        docstring for why an xdist worker runs them in its tests)."""
        if not declared or worker is not None:
            return None
        client = self._client()
        pool = AgentPool(concurrency=self.settings.concurrency, close=client.aclose)
        pool.start(
            [
                AgentJob(d.nodeid, agent_run(client, self._prompt, d.param, d.case_id, d.case))
                for d in declared
            ]
        )
        self.agents = pool
        return pool

    @property
    def scratch_dir(self) -> Path:
        """Where this run's workers share their answers when the response cache cannot."""
        return self._run_dir.parent.parent / "inflight" / self._run_dir.name

    def scratch_cache(self) -> ResponseCache:
        """A cache the workers of this run share: it starts empty (the run id is new) and
        the controller deletes it when the run ends (:meth:`close`)."""
        return ResponseCache(self.scratch_dir, "new")

    def progress_line(self) -> str | None:
        """One line on the ahead-of-time generation (summed over xdist workers)."""
        if self.generator is not None:
            return self.generator.progress.line()
        if not self.worker_progress:
            return None
        progress = self.worker_progress
        sent = sum(p.sent for p in progress)
        replayed = sum(p.replayed for p in progress)
        errors = sum(p.errors for p in progress)
        cost = progress_cost(progress)
        elapsed = max(p.elapsed for p in progress)
        total = max(p.total for p in progress)
        return (
            f"generated {total} declared completions on {len(progress)} workers in "
            f"{elapsed:.1f}s ({sent} sent, {replayed} replayed, {errors} errors, {cost})"
        )

    def close(self) -> None:
        """Stop the generator; a helper process warmed up and never used is killed. The
        controller (or a serial run), which ends after every worker, deletes the run's
        scratch cache, and any an interrupted run left a day ago or more."""
        if self.generator is not None:
            self.generator.stop()
        if self.agents is not None:
            self.agents.stop()
        if self.sender is not None and (self.generator is None or self.generator.sender is None):
            self.sender.kill()
        if not self._in_worker:
            _remove_scratch(self.scratch_dir)


STALE_SCRATCH_S = 24 * 3600.0  # no run lasts this long: its scratch cache was left behind


def _remove_scratch(scratch: Path) -> None:
    inflight = scratch.parent
    if not inflight.is_dir():
        return
    shutil.rmtree(scratch, ignore_errors=True)
    now = time.time()
    with contextlib.suppress(OSError):
        for left in os.scandir(inflight):
            if left.is_dir() and now - left.stat().st_mtime > STALE_SCRATCH_S:
                shutil.rmtree(left.path, ignore_errors=True)
    with contextlib.suppress(OSError):
        inflight.rmdir()  # only when empty: another run may be sharing its own
