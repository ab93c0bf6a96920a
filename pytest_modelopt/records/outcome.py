"""How a case ends: pytest's phase and exception turned into the case's status. Pure.

The plugin hands over what pytest saw (the phase, the exception, whether it was skipped)
and applies the returned :class:`ReportChange` to pytest's report; nothing here imports
pytest, so every rule is unit-tested directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..collect.prompts import PromptError
from ..graders.base import GraderError
from ..model.types import ModelCallError
from .models import ErrorRecord

if TYPE_CHECKING:
    from .case import CaseState


def error_of(exc: BaseException) -> ErrorRecord | None:
    """Known failures that are *errors* of a case (not grades), as a one-line record."""
    if isinstance(exc, ModelCallError):
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
            lines.append(f"  {grade.name}: score {grade.score:g} - {grade.reason}")
    if state.output is not None:
        shown = state.output if len(state.output) <= 500 else state.output[:500] + "…"
        lines.append(f"  output: {shown!r}")
    return "\n".join(lines)
