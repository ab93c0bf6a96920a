"""How a case ends: pytest's phase and exception turned into the case's status. Pure.

The plugin hands over what pytest saw (the phase, the exception, whether it was skipped)
and applies the returned :class:`ReportChange` to pytest's report; nothing here imports
pytest, so every rule is unit-tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..collect.prompts import PromptError
from ..graders.base import GraderError
from ..model.types import AgentError, ModelCallError
from ..untrusted import one_line as safe_line
from .models import ErrorRecord

if TYPE_CHECKING:
    from .case import CaseState


def error_of(exc: BaseException) -> ErrorRecord | None:
    """Known failures that are *errors* of a case (not grades), as a one-line record."""
    if isinstance(exc, ModelCallError | AgentError):
        return ErrorRecord(kind=exc.kind, message=exc.message)
    if isinstance(exc, PromptError):
        return ErrorRecord(kind="prompt", message=str(exc))
    if isinstance(exc, GraderError):
        return ErrorRecord(kind="grader", message=str(exc))
    return None


def failed_grades_text(state: CaseState) -> str:
    """The failure message of a case whose grades failed, for pytest's report."""
    lines = [f"eval {state.param.spec.name} on {state.param.model}, case {state.case_id}:"]
    for grade in state.grades:
        if not grade.passed:
            lines.append(safe_line(f"  {grade.name}: score {grade.score:g} - {grade.reason}"))
    if state.output is not None:
        shown = state.output if len(state.output) <= 500 else state.output[:500] + "…"
        lines.append(f"  output: {shown!r}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportChange:
    """What the plugin changes on pytest's report of a phase (None: leave it)."""

    outcome: str | None = None  # "passed" for a tolerated failure, "failed" for failed grades
    longrepr: str | None = None
    clear_longrepr: bool = False
    pending: bool = False  # shown as PENDING (a prompt not written yet)
    error: bool = False  # shown as ERROR (a model call, prompt or grader error)
    tolerated: bool = False  # a failed case under a threshold: counted, not a failed test


def exception_line(exc: BaseException) -> str:
    """An exception as the one line a report shows: its first line, cut, made safe."""
    text = str(exc).strip() or f"{type(exc).__name__} (no message)"
    return safe_line(text.splitlines()[0], 300)


def _error_line(state: CaseState, error: ErrorRecord) -> str:
    line = f"{state.param.spec.name} [{state.case_id}]: {error.kind}: {error.message}"
    return safe_line(line)


def setup_ended(
    state: CaseState,
    *,
    skipped: bool,
    skip_reason: str | None,
    failed: bool,
    exc: BaseException | None,
) -> ReportChange:
    """A skip at setup is pending (the prompt is not written) or skipped; a failure there
    (a fixture: the declared completion, the case) is an error of the case."""
    if skipped:
        pending = state.param.spec.pending_reason
        state.status = "pending" if pending else "skipped"
        state.note = pending or skip_reason
        return ReportChange(pending=state.status == "pending")
    if failed and exc is not None:
        known = error_of(exc)
        state.status = "error"
        state.error = known or ErrorRecord(kind="exception", message=exception_line(exc))
        if known is not None:
            return ReportChange(longrepr=_error_line(state, known))
    return ReportChange()


def call_ended(
    state: CaseState,
    *,
    skipped: bool,
    skip_reason: str | None,
    exc: BaseException | None,
    duration: float,
) -> ReportChange:
    """The test body's end: passed, failed (an assert or a failed grade), skipped, or an
    error (a known error, or any other exception). Under a threshold a failed case is
    tolerated: it counts against the pass rate, it does not fail the test."""
    state.duration_s = duration
    threshold = state.param.spec.threshold
    change = ReportChange()
    if exc is None:
        failed = [g for g in state.grades if not g.passed]
        state.status = "failed" if failed else "passed"
        if failed and threshold is None:
            change = ReportChange(outcome="failed", longrepr=failed_grades_text(state))
    elif skipped:
        state.status = "skipped"
        state.note = skip_reason
    elif (known := error_of(exc)) is not None:
        state.status, state.error = "error", known
        change = ReportChange(longrepr=_error_line(state, known), error=True)
    elif isinstance(exc, AssertionError):
        state.status = "failed"
        state.assert_reason = exception_line(exc)
    else:
        state.status = "error"
        state.error = ErrorRecord(
            kind="exception", message=f"{type(exc).__name__}: {exception_line(exc)}"
        )
    if state.status == "failed" and threshold is not None:
        change = ReportChange(outcome="passed", clear_longrepr=True, tolerated=True)
    return change


def teardown_ended(state: CaseState, *, failed: bool, exc: BaseException | None) -> None:
    """A teardown that failed makes a case that had not errored an error."""
    if failed and state.status in (None, "passed", "failed"):
        state.status = "error"
        if exc is not None:
            state.error = ErrorRecord(kind="teardown", message=exception_line(exc))
