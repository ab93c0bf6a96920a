"""The active plugin: registered once a session has evals, it hands each pytest event to the
stage that owns it. Each hook is a few lines; the logic lives in the stages.

- collection: the ``eval`` marker becomes parameters (``collect/spec.py``), and the plan
  for declared completions starts (``generate/plan.py``);
- each test: its case's state is kept on the item, its outcome decided by
  ``records/outcome.py``, and its record written when it ends;
- the end: the run decides the verdict (``run.py``, ``verdict/judge.py``) and the terminal
  summary is composed by ``reports/terminal.py``; this module only prints it and sets
  the exit status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from ..collect.datasets import DatasetError, load_cases
from ..collect.prompts import PromptError
from ..collect.spec import (
    EvalParam,
    EvalSpecError,
    build_spec,
    merge_marker_kwargs,
    params_for,
    variants,
)
from ..config import ConfigError
from ..generate.generator import Progress
from ..generate.plan import (
    Declared,
    Worker,
    agent_run,
    declared_request,
    needs_agent_run,
    needs_completion,
)
from ..graders.base import Grade
from ..graders.context import GradingContext, grading
from ..model.types import AgentError
from ..records.case import CaseState
from ..records.models import CaseRecord
from ..records.outcome import ReportChange, call_ended, error_of, setup_ended, teardown_ended
from ..records.store import (
    RunNotFound,
    RunUnreadable,
    finished_cases,
    read_run_info,
    resolve_run,
)
from ..reports.junit import case_properties
from ..reports.terminal import SummaryParts, summary_lines
from ..run import EvalRun, Outcome, settings_for
from ..secrets import redact_url
from .junit import add_verdicts
from .options import OPTIONS
from .selection import evals_requested, held_back_line
from .state import PARAM, WORKER_OUTPUT, identity, is_worker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Mapping

    from ..config import Settings
    from ..model.agents_sdk import CaseRun
    from ..model.client import ModelClient
    from ..model.types import CallContext, Completion

STATE = pytest.StashKey[CaseState]()
INTERNAL_ERROR = pytest.ExitCode.INTERNAL_ERROR


class EvalPlugin:
    """One session's evals: the run, and the per-test hooks (registered on activation)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        cli = {key: config.getoption(f"modelopt_{key}") for key, *_ in OPTIONS}
        try:
            settings = settings_for(config.rootpath, cli)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        run_id, started_at = identity(config)
        run = self.run = EvalRun(
            settings,
            rootdir=config.rootpath,
            run_id=run_id,
            started_at=started_at,
            writer=workerinput["workerid"] if workerinput else "main",
            on_request=functools.partial(_request_hook, config.hook.pytest_modelopt_request),
            invocation_dir=config.invocation_params.dir,
        )
        if settings.batch != "off" and (
            getattr(config.option, "numprocesses", None) or workerinput
        ):
            raise pytest.UsageError(
                "--eval-batch runs in one process (the batch itself runs in parallel at OpenAI): "
                "drop -n, then replay the cached answers with -n if you like"
            )
        self.resumed: dict[str, CaseRecord] = {}
        self.write_error: str | None = None
        self.held_back = 0  # eval tests deselected: evals run on request, and none was made
        try:
            if settings.baseline:  # refused now, before a paid call is made
                run.baseline_dir = resolve_run(settings.baseline, run.runs_dir)
                read_run_info(run.baseline_dir)
        except (RunNotFound, RunUnreadable) as exc:
            raise pytest.UsageError(f"--eval-baseline: {exc}") from None
        try:
            if settings.resume:
                run.resume_from = resolve_run(settings.resume, run.runs_dir)
                self.resumed = finished_cases(run.resume_from)
        except (RunNotFound, RunUnreadable) as exc:
            raise pytest.UsageError(f"--eval-resume: {exc}") from None
        run.find_fine_tunes()

    def pytest_report_header(self) -> list[str]:
        """One line under pytest's own: what the evals will run against, and from where."""
        return [header_line(self.run.settings)]

    # -- collection ---------------------------------------------------------------------

    def generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Expand an eval test into models x cases x samples, before any user parametrize."""
        marks = list(metafunc.definition.iter_markers("eval"))
        run, config = self.run, metafunc.config
        nodeid = metafunc.definition.nodeid
        try:
            if any(mark.args for mark in marks):
                raise EvalSpecError("the eval marker takes keyword arguments only")
            spec = build_spec(
                merge_marker_kwargs([mark.kwargs for mark in marks]),
                default_name=_default_eval_name(nodeid),
                selected_models=run.settings.models,
                test_dir=metafunc.definition.path.parent,
                rootdir=config.rootpath,
                named_graders=run.named_graders,
            )
            cases = None
            if spec.dataset_path is not None:
                cases = load_cases(spec.dataset_path, schema=spec.schema, display_path=spec.dataset)
            specs = variants(spec)
            pending = spec.pending_reason
            if pending is None and spec.prompt_path is not None and (spec.params or spec.sweep):
                prompt = run.prompt(spec.prompt_path, spec.prompt)
                for each in specs:  # a bad param is refused now, not as each case's error
                    prompt.request_params(each.params, f"eval {each.name} params")
        except (EvalSpecError, DatasetError, PromptError) as exc:
            raise pytest.Collector.CollectError(f"{nodeid}: {exc}") from None
        if PARAM not in metafunc.fixturenames:
            metafunc.fixturenames.append(PARAM)
        params = [param for each in specs for param in params_for(each, cases)]
        if spec.prompt_path is not None and pending is None:
            run.planner.collected(len(params), worker=is_worker(config))
        marks_for_param = [pytest.mark.skip(reason=pending)] if pending else []
        values = [pytest.param(param, id=param.id, marks=marks_for_param) for param in params]
        if not values:
            reason = (
                f"eval {spec.name} runs only on {', '.join(spec.skipped_models)}, "
                f"which is not among the selected models ({', '.join(run.settings.models)})"
            )
            values = [pytest.param(None, id="no-model", marks=[pytest.mark.skip(reason=reason)])]
        metafunc.parametrize(PARAM, values)

    def sessionstart(self, session: pytest.Session) -> None:
        """With --eval-resume, the finished cases of the old run become part of this one."""
        run = self.run
        if run.resume_from is None or is_worker(session.config):
            return
        for record in self.resumed.values():
            run.write(record)

    def modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not evals_requested(self.run.settings, config.option.markexpr):
            held = [item for item in items if item.get_closest_marker("eval") is not None]
            if held:
                self.held_back = len(held)
                config.hook.pytest_deselected(items=held)
                items[:] = [item for item in items if item.get_closest_marker("eval") is None]
        for item in items:  # declared graders grade the completion, even if the test never asks
            param = _param(item)
            fixturenames = getattr(item, "fixturenames", None)
            needs = param is not None and param.spec.graders and fixturenames is not None
            if needs and "completion" not in fixturenames:  # type: ignore[operator]
                fixturenames.append("completion")  # type: ignore[union-attr]
        self._skip_trained_cases(config, items)
        if self.run.resume_from is None:
            return
        done = self.resumed
        keep = [item for item in items if item.nodeid not in done]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item.nodeid in done])
            items[:] = keep

    def _skip_trained_cases(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """A fine-tuned model is scored only on cases it did not train on (its manifest says)."""
        trained = self.run.fine_tunes.trained_cases
        if not trained:
            return
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            param = _param(item)
            skip = param is not None and _case_id(item, param) in trained.get(param.model, ())
            (drop if skip else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def collection_finish(self, session: pytest.Session) -> None:
        """Start generating every declared completion this session will need."""
        if session.config.option.collectonly:
            return
        declared: list[Declared] = []
        agents: list[Declared] = []
        for item in session.items:
            param = _param(item)
            if param is None:
                continue
            skipped = any(mark.name in ("skip", "skipif") for mark in item.iter_markers())
            fixturenames = getattr(item, "fixturenames", ())
            for needs, found in ((needs_completion, declared), (needs_agent_run, agents)):
                if needs(param, fixturenames, skipped):
                    case_id = _case_id(item, param)
                    case = self.case_values(item, param)
                    found.append(Declared(item.nodeid, param, case_id, case))
        evals = [item.nodeid for item in session.items if _param(item) is not None]
        if evals:
            self.run.collected(evals)
        workerinput = getattr(session.config, "workerinput", None)
        worker = None if workerinput is None else Worker.from_workerinput(workerinput)
        if declared:
            self._start_declared(session, declared, worker)
        run = self.run
        started = run.planner.start_agents(agents, worker)
        if started is not None and session.config.get_verbosity() >= 0:
            _say(
                session.config,
                f"running {len(agents)} agent cases ahead of the tests (at most "
                f"{run.settings.concurrency} at once, record mode {run.settings.record})",
            )

    def _start_declared(
        self, session: pytest.Session, declared: list[Declared], worker: Worker | None
    ) -> None:
        run, planner = self.run, self.run.planner
        jobs = planner.jobs(declared)
        if run.settings.batch != "off":
            # the Batch API's code, only with --eval-batch (start-up cost otherwise)
            from ..generate.batch import BatchError, run_batch

            try:
                stop = run_batch(
                    run.client,
                    mode=run.settings.batch,
                    jobs=jobs,
                    pending_dir=run.settings.dir / "batches",
                    run_id=run.run_id,
                    poll_interval=run.settings.batch_poll_interval,
                    report=functools.partial(_say, session.config),
                )
            except BatchError as exc:
                raise pytest.UsageError(f"--eval-batch: {exc}") from None
            if stop is not None:
                pytest.exit(stop, returncode=pytest.ExitCode.OK)
        planner.start(jobs, worker)
        if worker is None and session.config.get_verbosity() >= 0:
            settings = run.settings
            _say(
                session.config,
                f"generating {len(jobs)} declared completions ahead of the tests "
                f"(at most {settings.concurrency} at once, record mode {settings.record})",
            )

    # -- each test ----------------------------------------------------------------------

    def state(self, item: pytest.Item) -> CaseState | None:
        """The item's CaseState, created when its test starts (only the running tests hold
        one: memory, and the garbage collector's work, stay flat); None for other tests."""
        state = item.stash.get(STATE, None)
        if state is not None:
            return state
        param = _param(item)
        if param is None:
            return None
        state = item.stash[STATE] = CaseState(
            param=param, nodeid=item.nodeid, case_id=_case_id(item, param)
        )
        return state

    def eval_state(self, item: pytest.Item, fixture: str) -> CaseState:
        state = self.state(item)
        if state is None:
            raise pytest.UsageError(
                f"the {fixture!r} fixture only works in an eval test: mark the test with "
                "@pytest.mark.eval(...)"
            )
        return state

    def case_values(self, node: pytest.Item, param: EvalParam) -> Mapping[str, Any]:
        if param.case is not None:
            return param.case
        callspec = getattr(node, "callspec", None)
        params = callspec.params if callspec is not None else {}
        return {key: value for key, value in params.items() if key != PARAM}

    def completion(self, item: pytest.Item) -> Completion:
        """The declared completion of this test: from the plan, or sent here and now."""
        state = self.eval_state(item, "completion")
        spec = state.param.spec
        if spec.agent is not None:
            return self._agent_completion(item, state)
        if spec.prompt_path is None:
            raise pytest.UsageError(
                f"eval {spec.name}: the 'completion' fixture needs a prompt: "
                "@pytest.mark.eval(prompt='prompts/x.j2', ...) (or call llm.chat() yourself)"
            )
        run = self.run
        generator = run.planner.generator
        nodeid = item.nodeid
        if generator is not None and nodeid in generator:
            result = generator.result(nodeid)
            state.add_call(result, generator.take_input(nodeid), declared=True)
            return result
        case = self.case_values(item, state.param)
        api, body, context, messages = declared_request(
            run.client, run.prompt, state.param, state.case_id, case
        )
        result = run.client.call(api, body, context, prepared=True)
        state.add_call(result, messages, declared=True)
        return result

    def _agent_completion(self, item: pytest.Item, state: CaseState) -> Completion:
        """An ``agent=`` eval's completion: the agent's run on this case, taken from the
        pool that ran it ahead (a serial run) or run here (an xdist worker). Its calls and
        trajectory go on the case however it ended; a run that did not finish, or whose
        tool raised, is that case's error, but for what the model did (it kept calling
        tools past ``max_turns``...), which fails the case with the trajectory kept."""
        param, run = state.param, self.run
        pool = run.planner.agents
        if pool is not None and item.nodeid in pool:
            done: CaseRun = pool.result(item.nodeid)
        else:
            case = self.case_values(item, param)
            done = asyncio.run(
                _closing(run.client, agent_run(run.client, run.prompt, param, state.case_id, case))
            )
        for call in done.calls:
            state.add_call(call, done.input, declared=True)
        if done.trajectory is not None:
            state.add_trajectory(done.trajectory, declared=True)
        behaviour = done.model_behaviour()
        if behaviour is not None:
            state.grades.append(Grade(name="agent_run", score=0.0, passed=False, reason=behaviour))
            return done.completion()
        error = done.error
        if error is None:
            return done.completion()
        if error_of(error) is not None:
            raise error
        raise AgentError(
            "agent", f"the agent run raised {type(error).__name__}: {error}"
        ) from error

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Note the case as started before anything of it runs: if its process dies, the end
        of the run still counts it (as an error)."""
        state = self.state(item)
        if state is not None:
            self.run.started(state.started_fields())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """Grade inside a grading context (judge model, client, judge costs on the case);
        after the test body, apply the eval's declared graders to its completion."""
        state = self.state(item)
        if state is None:
            return (yield)
        run = self.run
        ctx = GradingContext(
            client=run.client,
            judge_model=run.settings.judge_model,
            embedding_model=run.settings.embedding_model,
            eval=state.param.spec.name,
            case_id=state.case_id,
            on_judge_call=state.add_judge_call,
            structured_output_level=run.structured_output_level,
        )
        with grading(ctx):
            result = yield
            if state.param.spec.graders:
                funcargs: dict[str, Any] = getattr(item, "funcargs", None) or {}
                completion = funcargs.get("completion")
                case_item = self.case_values(item, state.param)
                for grader in state.param.spec.graders:
                    state.add_grade(grader.grade(completion, case_item), grader)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        state = self.state(item)
        if state is None:
            return report
        exc = call.excinfo.value if call.excinfo is not None else None
        if call.when == "setup":
            skip = _skip_reason(report)
            _apply(
                report,
                setup_ended(
                    state, skipped=report.skipped, skip_reason=skip, failed=report.failed, exc=exc
                ),
            )
        elif call.when == "call":
            if exc is not None and state.trajectory is None:
                from ..model.tools import ToolError  # only when a test raised

                if isinstance(exc, ToolError) and exc.trajectory is not None:
                    state.add_trajectory(exc.trajectory)  # the tool loop up to the raise
            change = call_ended(
                state,
                skipped=report.skipped,
                skip_reason=_skip_reason(report),
                exc=exc,
                duration=call.duration,
            )
            _apply(report, change)
        elif call.when == "teardown":
            teardown_ended(state, failed=report.failed, exc=exc)
            self._record(item, state, report)
        return report

    def _record(self, item: pytest.Item, state: CaseState, report: pytest.TestReport) -> None:
        fields = state.record_fields()
        del item.stash[STATE]  # the record is on disk (or lost): memory stays flat
        try:
            self.run.write(fields)
        except OSError as exc:
            self._cannot_record(item, report, exc)
            return
        hook = item.config.hook.pytest_modelopt_case_result
        junit = bool(item.config.option.xmlpath)
        if junit or hook.get_hookimpls():  # the model costs more than writing the line
            record = CaseRecord.model_validate(fields)
            if junit:  # only --junitxml reads them: memory stays flat
                report.user_properties.extend(case_properties(record))
            hook(record=record)

    def _cannot_record(self, item: pytest.Item, report: pytest.TestReport, exc: OSError) -> None:
        """A record that cannot be written (a full disk): stop sending and stop the session
        after this test; what was written is kept, the rest is named at the end."""
        reason = exc.strerror or str(exc)
        if self.write_error is None:
            self.write_error = f"could not record {item.nodeid}: {reason}"
            self.run.planner.close()
            item.session.shouldstop = f"modelopt: the run cannot be recorded ({reason})"
        report.outcome = "failed"
        report.longrepr = f"modelopt: could not write this case's record: {reason}"

    # -- the end ------------------------------------------------------------------------

    def finish(self, session: pytest.Session) -> None:
        """The controller (or a serial run) decides the verdict; a worker closes its files
        and reports its progress. A verdict that could not be decided fails the run."""
        config, run = session.config, self.run
        if is_worker(config):
            run.close()
            workeroutput: dict[str, Any] = getattr(config, "workeroutput", {})
            workeroutput["modelopt_evals"] = True
            workeroutput["modelopt_held_back"] = self.held_back
            if self.write_error is not None:
                workeroutput["modelopt_write_error"] = self.write_error
            workeroutput["modelopt_cache_errors"] = run.cache_errors()
            generator = run.planner.generator
            if generator is not None:
                workeroutput["modelopt_progress"] = dataclasses.asdict(generator.progress)
            return
        write_errors = [self.write_error] if self.write_error else []
        for output in config.stash.get(WORKER_OUTPUT, []):
            progress = output.get("modelopt_progress")
            if progress:
                run.planner.worker_progress.append(Progress(**progress))
            if output.get("modelopt_write_error"):
                write_errors.append(output["modelopt_write_error"])
        cache_errors = [
            e
            for o in config.stash.get(WORKER_OUTPUT, [])
            for e in o.get("modelopt_cache_errors", [])
        ]
        try:
            outcome = run.finish(config.hook, cache_errors)
        except Exception as exc:  # the run's own guard failed: still fail closed
            outcome = run.outcome = Outcome(problems=[f"{type(exc).__name__}: {exc}"])
        if write_errors:
            shown = ", ".join(outcome.not_run[:10]) + (", ..." if len(outcome.not_run) > 10 else "")
            outcome.problems.append(
                f"{write_errors[0]}: the run stopped; "
                + (f"{len(outcome.not_run)} cases did not run: {shown}" if outcome.not_run else "")
                + "; free some space (or fix the folder's permissions) and run the rest with "
                f"--eval-resume {run.run_id}"
            )
        elif outcome.not_run:
            outcome.notes.append(
                f"{len(outcome.not_run)} eval cases did not run (the session stopped early)"
            )
        if outcome.report is not None:
            try:
                add_verdicts(config, outcome.report)
            except Exception as exc:
                outcome.problems.append(f"could not add the verdicts to --junitxml: {exc}")
        if outcome.problems:
            session.exitstatus = INTERNAL_ERROR
        elif outcome.failed and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        config, run = self.config, self.run
        outcome = run.outcome
        if outcome is None:
            return
        verbose = config.get_verbosity() >= 0
        held = max(
            [self.held_back]
            + [o.get("modelopt_held_back", 0) for o in config.stash.get(WORKER_OUTPUT, [])]
        )
        if held:  # every xdist worker collects (and holds back) the same tests
            terminalreporter.write_line(held_back_line(held, run.settings), yellow=True)
        extra = [col for cols in config.hook.pytest_modelopt_summary_columns() for col in cols]
        sections: list[tuple[str, str]] = []
        if outcome.summary is not None:
            for found in config.hook.pytest_modelopt_summary_sections(summary=outcome.summary):
                sections += found
        settings = run.settings
        parts = SummaryParts(
            summary=outcome.summary,
            report=outcome.report,
            problems=outcome.problems,
            progress=run.planner.progress_line() if verbose else None,
            extra_columns=extra,
            sections=sections,
            notes=[*run.fine_tunes.notes.values(), *outcome.notes],
            store_warnings=outcome.store_warnings,
            distill_to=settings.distill_to,
            distill_lines=outcome.distill_lines,
            run_dir=_relative(run.run_dir, config.rootpath),
            baseline_ref=settings.baseline or settings.baseline_model,
            width=config.get_terminal_writer().fullwidth,  # COLUMNS, else the terminal's
        )
        tr = terminalreporter
        for line in summary_lines(parts):
            if line.sep is not None:
                tr.write_sep(line.sep, line.text, red=line.red)
            else:
                tr.write_line(line.text, red=line.red, bold=line.bold, yellow=line.yellow)


def header_line(settings: Settings) -> str:
    """The models, the record mode, the endpoint's host (never its credentials: only the
    host and port are shown) and where the settings came from."""
    models = ", ".join(settings.models) or "none selected (each eval's own models=)"
    if settings.base_url is None:
        host = "api.openai.com (the default)"
    else:
        parts = urlsplit(redact_url(settings.base_url) or "")
        host = parts.hostname or "?"
        host += f":{parts.port}" if parts.port else ""
        host += f" ({settings.source_of('base_url')})"
    sources = ", ".join(source.removeprefix("environment ") for source in settings.sources())
    return (
        f"modelopt: models {models}; record mode {settings.record}; base URL host {host}; "
        f"settings from {sources or 'defaults'}"
    )


def _apply(report: pytest.TestReport, change: ReportChange) -> None:
    """What the case's outcome changes on pytest's report of the phase."""
    if change.outcome is not None:
        report.outcome = change.outcome  # type: ignore[assignment]
    if change.clear_longrepr:
        report.longrepr = None
    elif change.longrepr is not None:
        report.longrepr = change.longrepr
    if change.pending:
        report.modelopt_pending = True  # type: ignore[attr-defined]
    if change.error:
        report.modelopt_error = True  # type: ignore[attr-defined]
    if change.tolerated:
        report.modelopt_case_failed = True  # type: ignore[attr-defined]


async def _closing(client: ModelClient, run: Callable[[], Awaitable[Any]]) -> Any:
    """``run()`` on a loop of its own, then the client's connections on that loop closed."""
    try:
        return await run()
    finally:
        await client.aclose()


def _request_hook(hook: Any, request: dict[str, Any], context: CallContext) -> None:
    if hook.get_hookimpls():  # conftest files register theirs during collection
        hook(request=request, context=context)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"modelopt: {line}")


def _param(item: pytest.Item) -> EvalParam | None:
    """Which eval, model, case and sample the item is; None for tests that are not evals."""
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get(PARAM) if callspec is not None else None
    return param if isinstance(param, EvalParam) else None


def _case_id(item: pytest.Item, param: EvalParam) -> str:
    if param.case is not None:
        return param.case.id
    callspec = getattr(item, "callspec", None)
    rest = callspec.id[len(param.id) :].lstrip("-") if callspec is not None else ""
    return rest or "default"


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else None


def _default_eval_name(nodeid: str) -> str:
    path, _, rest = nodeid.partition("::")
    return f"{Path(path).stem}::{rest}"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
