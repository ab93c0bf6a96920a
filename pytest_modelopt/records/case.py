"""The case in flight: what happened to one test item so far, until it is recorded.

Beside the schema it mirrors (``models.CaseRecord``): ``CaseState.record_fields`` writes the
record's JSON without building the model, and a test holds the two byte-identical. Output,
reasons and error messages are redacted on the way (``secrets.redact``): a model that echoes
a key must not make it persist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..costs import total
from ..graders.base import Grade, Grader, GraderError
from ..model.types import Completion, Usage
from ..secrets import redact
from .models import SCHEMA_VERSION, CaseRecord, ErrorRecord, Status
from .trajectory import Trajectory

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..collect.spec import EvalParam


_INCOMPLETE = "the answer is incomplete"


@dataclass
class CaseState:
    """What happened to one test item so far; becomes its CaseRecord at teardown."""

    param: EvalParam
    nodeid: str
    case_id: str
    grades: list[Grade] = field(default_factory=list)
    graders: list[dict[str, Any] | None] = field(default_factory=list)  # beside each grade
    identities: list[str | None] = field(default_factory=list)  # beside each grade
    calls: list[Completion] = field(default_factory=list)
    input: Any = None
    output: str | None = None
    error: ErrorRecord | None = None
    status: Status | None = None
    duration_s: float = 0.0
    assert_reason: str | None = None
    note: str | None = None
    judge_calls: list[Completion] = field(default_factory=list)
    completion_id: str | None = None
    completion_metadata: dict[str, str] | None = None
    # what the case's agent did, in the trajectory format (records/trajectory.py)
    trajectory: Trajectory | None = None

    declared: bool = False
    declared_trajectory: bool = False

    def add_call(self, completion: Completion, input: Any, *, declared: bool = False) -> None:
        """Count every call; the declared prompt's output is the case's, else the last call's."""
        self.calls.append(completion)
        if declared or not self.declared:
            self.input, self.output = input, completion.text
            reason = completion.incomplete
            if reason is not None:
                self.note = f"{_INCOMPLETE} ({reason}): graded as it came, cut short"
            elif self.note is not None and self.note.startswith(_INCOMPLETE):
                self.note = None  # a later, whole answer is the case's output now
            response_id = (completion.response or {}).get("id")
            self.completion_id = str(response_id) if response_id else None
            metadata = completion.request.get("metadata") if completion.request else None
            self.completion_metadata = dict(metadata) if isinstance(metadata, dict) else None
            self.declared = self.declared or declared

    def add_trajectory(
        self, trajectory: Mapping[str, Any] | Trajectory, *, declared: bool = False
    ) -> None:
        """An agent's run on this case. As with outputs, the ``agent=`` eval's own run is
        the case's; without one, the last run the test made (``run_agent``) or graded."""
        if declared or not self.declared_trajectory:
            self.trajectory = (
                trajectory
                if isinstance(trajectory, Trajectory)
                else Trajectory.model_validate(trajectory)
            )
            self.declared_trajectory = self.declared_trajectory or declared

    def add_grade(self, grade: Grade, grader: Grader) -> None:
        """A grade, the grader that gave it as OpenAI JSON when it has one (a judge with
        the judge model that judged), and the grader's identity (human labels bind to it)."""
        self.grades.append(grade)
        resolved = grader.resolved()
        try:
            self.graders.append(resolved.to_openai())
        except GraderError:  # a Python function
            self.graders.append(None)
        self.identities.append(resolved.identity())

    def add_judge_call(self, completion: Completion) -> None:
        self.judge_calls.append(completion)

    def started_fields(self) -> dict[str, Any]:
        """What the end of the run needs to count this case as an error if it never ends."""
        spec = self.param.spec
        return {
            "schema_version": SCHEMA_VERSION,
            "eval": spec.name,
            "nodeid": self.nodeid,
            "model": self.param.model,
            "case_id": self.case_id,
            "sample": self.param.sample,
            "threshold": None if spec.threshold is None else float(spec.threshold),
            "fingerprint": spec.fingerprint,
            "fail_on": list(spec.fail_on),
            "strict": spec.strict,
            "calibration": spec.calibration,
        }

    def record(self) -> CaseRecord:
        return CaseRecord.model_validate(self.record_fields())

    def record_fields(self) -> dict[str, Any]:
        """The CaseRecord as the JSON-ready dict its ``model_dump()`` is: every field, in
        field order, each of its field's type. Written without building the model, which
        costs more than the rest of recording a case (tests hold the two equal)."""
        calls, judge_calls = self.calls, self.judge_calls
        cost, unpriced = total([c.cost for c in calls])
        judge_cost, unpriced_judges = total([c.cost for c in judge_calls])
        definitions = self.graders + [None] * (len(self.grades) - len(self.graders))
        identities = self.identities + [None] * (len(self.grades) - len(self.identities))
        grades = [
            {
                "name": g.name,
                "score": g.score,
                "passed": g.passed,
                "reason": redact(g.reason) if g.reason else g.reason,
                "error": None,
                "sub_scores": dict(g.sub_scores),
                "grader": d,
                "identity": i,
            }
            for g, d, i in zip(self.grades, definitions, identities, strict=True)
        ]
        if self.status == "failed" and self.assert_reason is not None:
            grades.append(_assert_grade(0.0, False, redact(self.assert_reason)))
        elif self.status == "passed" and not grades:
            grades.append(_assert_grade(1.0, True, ""))
        spec, error, metadata = self.param.spec, self.error, self.completion_metadata
        usage = sum((c.usage for c in calls), Usage()) if len(calls) != 1 else calls[0].usage
        return {
            "schema_version": SCHEMA_VERSION,
            "eval": spec.name,
            "nodeid": self.nodeid,
            "model": self.param.model,
            "case_id": self.case_id,
            "sample": self.param.sample,
            "status": self.status or "error",
            "threshold": None if spec.threshold is None else float(spec.threshold),
            "input": self.input,
            "output": None if self.output is None else redact(self.output),
            "item": dict(self.param.case) if self.param.case is not None else None,
            "completion_id": self.completion_id,
            "completion_metadata": (
                None if metadata is None else {str(k): str(v) for k, v in metadata.items()}
            ),
            "grades": grades,
            "error": (
                None if error is None else {"kind": error.kind, "message": redact(error.message)}
            ),
            "latency_s": float(sum(c.latency_s for c in calls)) if calls else None,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
            "cost": cost,
            "unpriced_calls": unpriced,
            "calls": len(calls),
            "duration_s": round(float(self.duration_s), 6),
            "note": self.note,
            "fingerprint": spec.fingerprint,
            "fail_on": list(spec.fail_on),
            "strict": spec.strict,
            "calibration": spec.calibration,
            "judge_calls": len(judge_calls),
            "judge_tokens": sum(c.usage.total_tokens for c in judge_calls),
            "judge_cost": judge_cost,
            "unpriced_judge_calls": unpriced_judges,
            "finished_at": time.time(),
            "trajectory": (
                None if self.trajectory is None else _redacted(self.trajectory.model_dump())
            ),
        }


def _redacted(value: Any) -> Any:
    """Every string inside ``value`` redacted: a tool's output or a model's message can
    echo a key as well as the final output can."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _assert_grade(score: float, passed: bool, reason: str) -> dict[str, Any]:
    return {
        "name": "assert",
        "score": score,
        "passed": passed,
        "reason": reason,
        "error": None,
        "sub_scores": {},
        "grader": None,
        "identity": None,
    }
