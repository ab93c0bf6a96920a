"""pytest glue: options, the ``eval`` marker, fixtures and hooks. Logic lives elsewhere."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Generator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .client import BoundModel, CallContext, Completion
from .config import ConfigError, cli_appends, cli_const, cli_fields, load_settings
from .datasets import DatasetError, load_cases
from .evals import (
    CaseState,
    EvalParam,
    EvalSpecError,
    build_spec,
    error_of,
    failed_grades_text,
    merge_marker_kwargs,
    params_for,
)
from .generate import CompletionGenerator, Job, Progress
from .graders.base import Grade, as_grader
from .graders.context import GradingContext, grading
from .records import CaseRecord, ErrorRecord, RunNotFound, finished_cases, resolve_run
from .session import EvalSession

if TYPE_CHECKING:
    from contextvars import Token

    from .optimize.flow import Finetuner

SESSION = pytest.StashKey[EvalSession]()
STATE = pytest.StashKey[CaseState]()
_ITEM_TOKEN: pytest.StashKey[Token[pytest.Item | None]] = pytest.StashKey()
PARAM = "_modelopt_param"
# The running test item, for the plugin's fixtures: through ``request`` pytest would build
# its special request fixture again for every fixture and item (measured: ~0.1 ms a test).
_ITEM: ContextVar[pytest.Item | None] = ContextVar("modelopt_item", default=None)
MARKER_DOC = (
    "eval(prompt=None, dataset=None, threshold=None, samples=1, name=None, models=None, "
    "schema=None): an LLM eval, run once per selected model (and per dataset case and "
    "sample). See pytest-modelopt's docs/reference.md."
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelopt", "LLM evals (pytest-modelopt)")
    for key, option, metavar, help_text in cli_fields():
        const = cli_const(key)
        extra: dict[str, Any] = {"nargs": "?", "const": const} if const else {}
        if cli_appends(key):
            extra = {"action": "append"}
        group.addoption(
            option,
            dest=f"modelopt_{key}",
            metavar=metavar,
            default=None,
            help=f"{help_text} Also MODELOPT_{key.upper()} / [tool.modelopt] {key}.",
            **extra,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    cli = {key: config.getoption(f"modelopt_{key}") for key, *_ in cli_fields()}
    try:
        settings = load_settings(config.rootpath, cli)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    session = EvalSession(
        settings,
        rootdir=config.rootpath,
        run_id=workerinput.get("modelopt_run_id") if workerinput else None,
        started_at=workerinput.get("modelopt_started_at") if workerinput else None,
        writer=workerinput["workerid"] if workerinput else "main",
        on_request=functools.partial(_request_hook, config.hook.pytest_modelopt_request),
    )
    if settings.batch != "off" and (
        getattr(config.option, "numprocesses", None) or getattr(config, "workerinput", None)
    ):
        raise pytest.UsageError(
            "--eval-batch runs in one process (the batch itself runs in parallel at OpenAI): "
            "drop -n, then replay the cached answers with -n if you like"
        )
    if settings.baseline:
        try:
            session.baseline_dir = resolve_run(settings.baseline, session.runs_dir)
        except RunNotFound as exc:
            raise pytest.UsageError(f"--eval-baseline: {exc}") from None
    if settings.resume:
        try:
            session.resume_from = resolve_run(settings.resume, session.runs_dir)
        except RunNotFound as exc:
            raise pytest.UsageError(f"--eval-resume: {exc}") from None
    session.find_fine_tunes()
    config.stash[SESSION] = session
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "modelopt-xdist")


def _request_hook(hook: Any, request: dict[str, Any], context: CallContext) -> None:
    if hook.get_hookimpls():  # conftest files register theirs during collection
        hook(request=request, context=context)


class _XdistHooks:
    """Registered only with xdist present: hands the run id to every worker."""

    def __init__(self, session: EvalSession) -> None:
        self.session = session

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["modelopt_run_id"] = self.session.run_id
        node.workerinput["modelopt_started_at"] = self.session.started_at

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        progress = output.get("modelopt_progress")
        if progress:
            self.session.worker_progress.append(Progress(**progress))


def pytest_sessionstart(session: pytest.Session) -> None:
    """With --eval-resume, the finished cases of the old run become part of this one."""
    ev = session.config.stash.get(SESSION, None)
    if ev is None or ev.resume_from is None or _is_worker(session.config):
        return
    for record in finished_cases(ev.resume_from).values():
        ev.write(record)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ev = config.stash.get(SESSION, None)
    if ev is None:
        return
    for item in items:  # declared graders grade the completion, even if the test never asks
        param = _param(item)
        fixturenames = getattr(item, "fixturenames", None)
        needs = param is not None and param.spec.graders and fixturenames is not None
        if needs and "completion" not in fixturenames:  # type: ignore[operator]
            fixturenames.append("completion")  # type: ignore[union-attr]
    _skip_trained_cases(config, ev, items)
    if ev.resume_from is None:
        return
    done = finished_cases(ev.resume_from)
    keep = [item for item in items if item.nodeid not in done]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid in done])
        items[:] = keep


def _skip_trained_cases(config: pytest.Config, ev: EvalSession, items: list[pytest.Item]) -> None:
    """A fine-tuned model is scored only on cases it did not train on (its manifest says)."""
    if not ev.trained_cases:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        param = _param(item)
        skip = param is not None and _case_id(item, param) in ev.trained_cases.get(param.model, ())
        (drop if skip else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _default_eval_name(nodeid: str) -> str:
    path, _, rest = nodeid.partition("::")
    return f"{Path(path).stem}::{rest}"


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Expand an eval test into models x cases x samples, before any user parametrize."""
    marks = list(metafunc.definition.iter_markers("eval"))
    if not marks:
        return
    config = metafunc.config
    session = config.stash[SESSION]
    nodeid = metafunc.definition.nodeid
    try:
        if any(mark.args for mark in marks):
            raise EvalSpecError("the eval marker takes keyword arguments only")
        spec = build_spec(
            merge_marker_kwargs([mark.kwargs for mark in marks]),
            default_name=_default_eval_name(nodeid),
            selected_models=session.settings.models,
            test_dir=metafunc.definition.path.parent,
            rootdir=config.rootpath,
            named_graders=session.named_graders,
        )
        cases = None
        if spec.dataset_path is not None:
            cases = load_cases(spec.dataset_path, schema=spec.schema, display_path=spec.dataset)
    except (EvalSpecError, DatasetError) as exc:
        raise pytest.Collector.CollectError(f"{nodeid}: {exc}") from None
    if PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(PARAM)
    pending = spec.pending_reason
    params = params_for(spec, cases)
    if spec.prompt_path is not None and pending is None and not _is_worker(config):
        session.warm_sender(len(params))  # declared completions are coming
    marks_for_param = [pytest.mark.skip(reason=pending)] if pending else []
    values = [pytest.param(param, id=param.id, marks=marks_for_param) for param in params]
    if not values:
        reason = (
            f"eval {spec.name} runs only on {', '.join(spec.skipped_models)}, "
            f"which is not among the selected models ({', '.join(session.settings.models)})"
        )
        values = [pytest.param(None, id="no-model", marks=[pytest.mark.skip(reason=reason)])]
    metafunc.parametrize(PARAM, values)


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


def _state(item: pytest.Item) -> CaseState | None:
    """The item's CaseState, created when its test starts (only the running tests hold
    one: memory, and the garbage collector's work, stay flat); None for other tests."""
    state = item.stash.get(STATE, None)
    if state is not None:
        return state
    param = _param(item)
    if param is None:
        return None
    state = CaseState(param=param, nodeid=item.nodeid, case_id=_case_id(item, param))
    item.stash[STATE] = state
    return state


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def _modelopt_param() -> EvalParam | None:
    """Replaced by the eval parametrization; None in tests that are not evals."""
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The running item, for the fixtures (a ``request`` argument would cost every test
    a fixture definition); reset after its teardown, for a pytester run inside a test."""
    item.stash[_ITEM_TOKEN] = _ITEM.set(item)


@pytest.hookimpl(tryfirst=True)  # before the finalizers, which may raise
def pytest_runtest_teardown(item: pytest.Item) -> None:
    token = item.stash.get(_ITEM_TOKEN, None)
    if token is not None:
        del item.stash[_ITEM_TOKEN]
        _ITEM.reset(token)


def _item(fixture: str) -> pytest.Item:
    item = _ITEM.get()
    if item is None:  # pragma: no cover - function-scoped fixtures run inside a test
        raise pytest.UsageError(f"the {fixture!r} fixture needs a running test")
    return item


def _eval_state(item: pytest.Item, fixture: str) -> CaseState:
    state = _state(item)
    if state is None:
        raise pytest.UsageError(
            f"the {fixture!r} fixture only works in an eval test: mark the test with "
            "@pytest.mark.eval(...)"
        )
    return state


@pytest.fixture
def llm(_modelopt_param: EvalParam | None) -> BoundModel:
    """The model under test (outside evals: the first selected model)."""
    item = _item("llm")
    session = item.config.stash[SESSION]
    if _modelopt_param is None:
        if not session.settings.models:
            raise pytest.UsageError(
                "the 'llm' fixture needs a model: pass --eval-models or set models in "
                "[tool.modelopt]"
            )
        return BoundModel(session.client, session.settings.models[0])
    state = _eval_state(item, "llm")
    return BoundModel(
        session.client,
        _modelopt_param.model,
        sample=_modelopt_param.sample,
        eval=_modelopt_param.spec.name,
        case_id=state.case_id,
        on_call=state.add_call,
    )


@pytest.fixture
def model(llm: BoundModel) -> BoundModel:
    """Another name for ``llm``."""
    return llm


@pytest.fixture
def case() -> Mapping[str, Any]:
    """The current dataset row (validated); without a dataset, the test's own parameters."""
    item = _item("case")
    return _case_values(item, _eval_state(item, "case").param)


def _case_values(node: pytest.Item | pytest.Collector, param: EvalParam) -> Mapping[str, Any]:
    if param.case is not None:
        return param.case
    callspec = getattr(node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return {key: value for key, value in params.items() if key != PARAM}


@pytest.fixture
def completion() -> Completion:
    """The declared prompt, rendered with this case, answered by this model."""
    item = _item("completion")
    state = _eval_state(item, "completion")
    spec = state.param.spec
    if spec.prompt_path is None:
        raise pytest.UsageError(
            f"eval {spec.name}: the 'completion' fixture needs a prompt: "
            "@pytest.mark.eval(prompt='prompts/x.j2', ...) (or call llm.chat() yourself)"
        )
    session = item.config.stash[SESSION]
    generator = session.generator
    nodeid = item.nodeid
    if generator is not None and nodeid in generator:
        result = generator.result(nodeid)
        state.add_call(result, generator.take_input(nodeid), declared=True)
        return result
    case = _case_values(item, state.param)
    api, body, context, messages = _declared_request(session, state.param, state.case_id, case)
    result = session.client.call(api, body, context, prepared=True)
    state.add_call(result, messages, declared=True)
    return result


def _declared_request(
    session: EvalSession, param: EvalParam, case_id: str, case: Mapping[str, Any]
) -> tuple[str, dict[str, Any], CallContext, Any]:
    """Render the eval's prompt for this case into the request it sends (hook applied)."""
    spec = param.spec
    assert spec.prompt_path is not None
    rendered = session.prompt(spec.prompt_path, spec.prompt).render(case)
    context = CallContext(
        endpoint=rendered.api,
        model=param.model,
        sample=param.sample,
        eval=spec.name,
        case_id=case_id,
    )
    body = {"model": param.model, **rendered.request()}
    body, context = session.client.prepare(rendered.api, body, context)
    return rendered.api, body, context, rendered.messages


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Start generating every declared completion this session will need."""
    ev = session.config.stash.get(SESSION, None)
    if ev is None or session.config.option.collectonly:
        return
    jobs = []
    for item in session.items:
        param = _param(item)
        if param is None or not _needs_completion(item, param):
            continue
        build = functools.partial(
            _declared_request, ev, param, _case_id(item, param), _case_values(item, param)
        )
        jobs.append(Job(item.nodeid, build))
    if not jobs:
        return
    if ev.settings.batch != "off":
        _run_batch(session, ev, jobs)
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is None:
        ev.generator = CompletionGenerator(
            ev.client,
            concurrency=ev.settings.concurrency,
            sender=ev.sender_for(len(jobs)),
        )
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and session.config.get_verbosity() >= 0:
            reporter.write_line(
                f"modelopt: generating {len(jobs)} declared completions ahead of the tests "
                f"(at most {ev.settings.concurrency} at once, record mode "
                f"{ev.settings.record})"
            )
    elif ev.settings.record != "off":
        index = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
        ev.generator = CompletionGenerator(
            ev.client,
            concurrency=ev.settings.concurrency,
            hold=False,
            offset=index / max(int(workerinput.get("workercount", 1)), 1),
        )
    if ev.generator is not None:
        ev.generator.start(jobs, replay_first=ev.has_recordings())


def _run_batch(session: pytest.Session, ev: EvalSession, jobs: list[Job]) -> None:
    from .batch import BatchError

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def report(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"modelopt: {line}")

    try:
        stop = ev.run_batch(jobs, report)
    except BatchError as exc:
        raise pytest.UsageError(f"--eval-batch: {exc}") from None
    if stop is not None:
        pytest.exit(stop, returncode=pytest.ExitCode.OK)


def _needs_completion(item: pytest.Item, param: EvalParam) -> bool:
    spec = param.spec
    if spec.prompt_path is None or spec.pending_reason is not None:
        return False
    if any(mark.name in ("skip", "skipif") for mark in item.iter_markers()):
        return False
    return "completion" in getattr(item, "fixturenames", ()) or bool(spec.graders)


@pytest.fixture(scope="session")
def finetune(request: pytest.FixtureRequest) -> Finetuner:
    """Build training sets from runs and launch fine-tuning jobs, with this session's
    settings and hooks (see docs/optimize.md)."""
    from .optimize.flow import Finetuner

    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    return Finetuner(config.stash[SESSION].settings, config.hook, say=say)


GradeFn = Callable[..., Grade]


@pytest.fixture
def grade() -> GradeFn:
    """``grade(output, grader, *, name=None)``: grade the output and record it on the case.

    In an eval the test's verdict comes from all its grades together (and its asserts);
    outside an eval a failed grade fails at once, like an assert.
    """
    test = _item("grade")
    state = _state(test)
    item: Mapping[str, Any] = {} if state is None else _case_values(test, state.param)
    named = test.config.stash[SESSION].named_graders

    def _grade(output: Any, grader: Any, *, name: str | None = None) -> Grade:
        built = as_grader(grader, named)
        result = built.grade(output, item)
        if name:
            result = result.model_copy(update={"name": name})
            built = built.model_copy(update={"name": name})
        if state is None:
            assert result.passed, f"{result.name}: {result.reason}"
        else:
            state.add_grade(result, built)
        return result

    return _grade


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Grade inside a grading context (judge model, client, judge costs on the case);
    after the test body, apply the eval's declared graders to its completion."""
    session = item.config.stash[SESSION]
    state = _state(item)
    ctx = GradingContext(
        client=session.client,
        judge_model=session.settings.judge_model,
        embedding_model=session.settings.embedding_model,
        eval=state.param.spec.name if state else None,
        case_id=state.case_id if state else None,
        on_judge_call=state.add_judge_call if state else None,
        structured_output_level=session.structured_output_level,
    )
    with grading(ctx):
        result = yield
        if state is not None and state.param.spec.graders:
            _apply_declared_graders(item, state)
    return result


def _apply_declared_graders(item: pytest.Item, state: CaseState) -> None:
    funcargs: dict[str, Any] = getattr(item, "funcargs", None) or {}
    completion = funcargs.get("completion")
    case_item = _case_values(item, state.param)
    for grader in state.param.spec.graders:
        state.add_grade(grader.grade(completion, case_item), grader)


# -- outcomes -------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = _state(item)
    if state is not None:
        _apply_outcome(item, state, report, call)
    return report


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or f"{type(exc).__name__} (no message)"
    first = text.splitlines()[0]
    return first if len(first) <= 300 else first[:299] + "…"


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else None


def _error_line(state: CaseState, error: ErrorRecord) -> str:
    return f"{state.param.spec.name} [{state.case_id}]: {error.kind}: {error.message}"


def _apply_outcome(
    item: pytest.Item, state: CaseState, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> None:
    excinfo = call.excinfo
    known = error_of(excinfo.value) if excinfo is not None else None
    threshold = state.param.spec.threshold
    if call.when == "setup":
        if report.skipped:
            pending = state.param.spec.pending_reason
            state.status = "pending" if pending else "skipped"
            state.note = pending or _skip_reason(report)
            report.modelopt_pending = state.status == "pending"  # type: ignore[attr-defined]
        elif report.failed and excinfo is not None:
            state.status = "error"
            state.error = known or ErrorRecord(kind="exception", message=_one_line(excinfo.value))
            if known is not None:
                report.longrepr = _error_line(state, known)
    elif call.when == "call":
        state.duration_s = call.duration
        if excinfo is None:
            failed = [g for g in state.grades if not g.passed]
            state.status = "failed" if failed else "passed"
            if failed and threshold is None:
                report.outcome = "failed"
                report.longrepr = failed_grades_text(state)
        elif report.skipped:
            state.status = "skipped"
            state.note = _skip_reason(report)
        elif known is not None:
            state.status, state.error = "error", known
            report.longrepr = _error_line(state, known)
            report.modelopt_error = True  # type: ignore[attr-defined]
        elif isinstance(excinfo.value, AssertionError):
            state.status = "failed"
            state.assert_reason = _one_line(excinfo.value)
        else:
            state.status = "error"
            state.error = ErrorRecord(
                kind="exception",
                message=f"{type(excinfo.value).__name__}: {_one_line(excinfo.value)}",
            )
        if state.status == "failed" and threshold is not None:
            report.outcome = "passed"
            report.longrepr = None
            report.modelopt_case_failed = True  # type: ignore[attr-defined]
    elif call.when == "teardown":
        if report.failed and state.status in (None, "passed", "failed"):
            state.status = "error"
            if excinfo is not None:
                state.error = ErrorRecord(kind="teardown", message=_one_line(excinfo.value))
        fields = state.record_fields()
        item.config.stash[SESSION].write(fields)
        del item.stash[STATE]  # the record is on disk: memory stays flat
        hook = item.config.hook.pytest_modelopt_case_result
        junit = bool(item.config.option.xmlpath)
        if junit or hook.get_hookimpls():  # the model costs more than writing the line
            record = CaseRecord.model_validate(fields)
            if junit:  # only --junitxml reads them: memory stays flat
                report.user_properties.extend(_junit_properties(record))
            hook(record=record)


def _junit_properties(record: CaseRecord) -> list[tuple[str, object]]:
    """What --junitxml consumers see of a case: scores and status as properties."""
    props: list[tuple[str, object]] = [
        ("modelopt_eval", record.eval),
        ("modelopt_model", record.model),
        ("modelopt_case", record.case_id),
        ("modelopt_status", record.status),
    ]
    if record.score is not None:
        props.append(("modelopt_score", round(record.score, 6)))
    props += [(f"modelopt_grade_{g.name}", round(g.score, 6)) for g in record.grades]
    return props


def _junit_verdicts(config: pytest.Config, ev: EvalSession) -> None:
    """Each eval's verdict as a global property of the --junitxml report."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None or ev.summary is None:
        return
    for row in ev.summary.evals:
        xml.add_global_property(f"modelopt:{row.eval}:{row.model}:verdict", row.verdict)
        if row.pass_rate is not None:
            xml.add_global_property(
                f"modelopt:{row.eval}:{row.model}:pass_rate", f"{row.pass_rate:.6f}"
            )
    if ev.report is not None and ev.report.comparison is not None:
        for comparison in ev.report.comparison.evals:
            xml.add_global_property(
                f"modelopt:{comparison.eval}:{comparison.candidate.model}:comparison",
                comparison.verdict,
            )


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
    if report.when == "call" and getattr(report, "modelopt_case_failed", False):
        return "tolerated", "f", ("EVAL-FAILED", {"yellow": True})
    if report.when == "call" and getattr(report, "modelopt_error", False):
        return "error", "E", ("ERROR", {"red": True})
    if report.when == "setup" and getattr(report, "modelopt_pending", False):
        return "pending", "p", ("PENDING", {"yellow": True})
    return None


# -- end of session -------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ev = session.config.stash.get(SESSION, None)
    if ev is None:
        return
    if _is_worker(session.config):
        ev.close()
        if ev.generator is not None:
            workeroutput: dict[str, Any] = getattr(session.config, "workeroutput", {})
            workeroutput["modelopt_progress"] = dataclasses.asdict(ev.generator.progress)
        return
    try:
        summary = ev.finish()
    except Exception as exc:
        ev.finish_error = f"could not summarise the run: {type(exc).__name__}: {exc}"
        return
    _junit_verdicts(session.config, ev)
    report = ev.report
    failed = (
        report.verdict == "fail"
        if report is not None
        else bool(summary is not None and _failing(summary))
    )
    if failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if ev.settings.store:
        ev.tag_stored_verdicts()
    if ev.settings.distill_to and summary is not None:
        ev.distill(session.config.hook, passed=not failed)


def _failing(summary: Any) -> bool:
    from .summary import failing_evals

    return bool(failing_evals(summary))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    ev = config.stash.get(SESSION, None)
    if ev is None or _is_worker(config):
        return
    # imported here: a session pays for the report code only when it has evals to report
    from .reports.terminal import (
        comparison_lines,
        error_lines,
        failure_lines,
        gate_lines,
        grader_lines,
        table_lines,
    )

    tr = terminalreporter
    if ev.finish_error:
        tr.write_sep("=", "modelopt", red=True)
        tr.write_line(f"modelopt: {ev.finish_error}")
        return
    summary = ev.summary
    if summary is None or not summary.evals:
        return
    progress = ev.generation_progress()
    if progress and config.get_verbosity() >= 0:
        tr.write_line(f"modelopt: {progress}")
    extra = [col for cols in config.hook.pytest_modelopt_summary_columns() for col in cols]
    tr.write_sep("=", "modelopt: evals")
    for line in table_lines(summary.evals, extra):
        tr.write_line(line)
    by_grader = grader_lines(summary.evals)
    if by_grader:
        tr.write_line("")
        tr.write_line("graders:")
        for line in by_grader:
            tr.write_line(f"  {line}")
    errors = error_lines(summary)
    if errors:
        tr.write_line("")
        tr.write_line("errors (not counted in pass rates):")
        for line in errors:
            tr.write_line(f"  {line}")
    pending = {row.eval: row.note for row in summary.evals if row.verdict == "pending"}
    for name, note in sorted(pending.items()):
        tr.write_line(f"PENDING eval {name}: {note or 'skipped'}")
    for sections in config.hook.pytest_modelopt_summary_sections(summary=summary):
        for title, text in sections:
            tr.write_sep("-", title)
            tr.write_line(text)
    for note in ev.holdout_notes.values():
        tr.write_line(f"modelopt: {note}")
    for warning in ev.store_warnings[:5]:
        tr.write_line(f"modelopt: store: {warning}", yellow=True)
    if ev.distill_lines:
        tr.write_sep("-", f"distill into {ev.settings.distill_to}")
        for line in ev.distill_lines:
            tr.write_line(line)
    run_dir = _relative(ev.run_dir, config.rootpath)
    report = ev.report
    if report is not None and report.comparison is not None:
        tr.write_sep("-", f"compared with {report.comparison.baseline_run}")
        for line in comparison_lines(report.comparison):
            tr.write_line(line)
    failures = failure_lines(summary, f"modelopt show {run_dir}")
    failures += gate_lines(report.gates) if report is not None else []
    tr.write_line("")
    for line in failures:
        tr.write_line(line, red=True, bold=True)
    if report is not None and report.comparison is not None and report.comparison.regressed:
        base = ev.settings.baseline or ev.settings.baseline_model
        tr.write_line(
            f"see the regressed cases: modelopt compare {base} {run_dir} --md compare.md",
            red=True,
        )
    tr.write_line(f"run saved to {run_dir} (modelopt show {run_dir})")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
