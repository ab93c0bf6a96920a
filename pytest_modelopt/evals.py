"""What an eval is: its spec (from the ``eval`` marker), its parameters, and how a case ends.

Pure logic; ``plugin.py`` feeds it marker kwargs and exceptions and gets plain data back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import Completion, ModelCallError, Usage
from .graders.base import Grade, Grader, GraderError, as_grader
from .prompts import PromptError
from .records import CaseRecord, ErrorRecord, Status

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pydantic import BaseModel

    from .datasets import Case

MARKER_KEYS = (
    "fail_on",
    "strict",
    "prompt",
    "dataset",
    "threshold",
    "samples",
    "name",
    "models",
    "schema",
    "graders",
)


class EvalSpecError(Exception):
    """A marker that cannot describe an eval (bad threshold, unknown key...)."""


@dataclass(frozen=True, eq=False)
class EvalSpec:
    name: str
    models: tuple[str, ...]
    prompt: str | None = None  # as written in the marker, for messages
    prompt_path: Path | None = None
    dataset: str | None = None
    dataset_path: Path | None = None
    threshold: float | None = None
    samples: int = 1
    schema: type[BaseModel] | None = None
    skipped_models: tuple[str, ...] = ()
    graders: tuple[Grader, ...] = ()
    fail_on: tuple[str, ...] = ()
    strict: bool = False

    @functools.cached_property
    def fingerprint(self) -> dict[str, str]:
        """Short hashes of what defines the eval, so a changed baseline can be flagged."""
        out: dict[str, str] = {}
        for key, path in (("prompt", self.prompt_path), ("dataset", self.dataset_path)):
            if path is not None and path.is_file():
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        if self.graders:
            described = [_describe(g) for g in self.graders]
            out["graders"] = hashlib.sha256(
                json.dumps(described, sort_keys=True, default=str).encode()
            ).hexdigest()[:12]
        return out

    @property
    def pending_reason(self) -> str | None:
        """Why the eval cannot run yet: its prompt file is not written."""
        if self.prompt_path is not None and not self.prompt_path.exists():
            return f"prompt not written yet: {self.prompt}"
        return None


def _describe(grader: Grader) -> object:
    try:
        return grader.to_openai()
    except GraderError:  # a Python function: its name is what we can compare
        return {"type": grader.type, "name": grader.label}


def merge_marker_kwargs(kwargs_closest_first: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Closest marker wins key by key (function over class over module)."""
    merged: dict[str, Any] = {}
    for kwargs in reversed(kwargs_closest_first):
        merged.update(kwargs)
    return merged


def resolve_path(value: str, test_dir: Path, rootdir: Path) -> Path:
    """Relative to the test file's folder; else to rootdir, where projects keep data/."""
    path = Path(value)
    if path.is_absolute():
        return path
    local = test_dir / path
    if local.exists() or not (rootdir / path).exists():
        return local
    return rootdir / path


def build_spec(
    kwargs: Mapping[str, Any],
    *,
    default_name: str,
    selected_models: Sequence[str],
    test_dir: Path,
    rootdir: Path,
    named_graders: Mapping[str, Grader] | None = None,
) -> EvalSpec:
    unknown = sorted(set(kwargs) - set(MARKER_KEYS))
    if unknown:
        raise EvalSpecError(
            f"unknown eval marker argument(s) {', '.join(unknown)}; known: {', '.join(MARKER_KEYS)}"
        )
    threshold = kwargs.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise EvalSpecError(f"threshold must be a number in [0, 1], got {threshold!r}")
        if not 0 <= threshold <= 1:
            raise EvalSpecError(f"threshold must be within [0, 1], got {threshold}")
    samples = kwargs.get("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise EvalSpecError(f"samples must be a whole number >= 1, got {samples!r}")
    name = kwargs.get("name") or default_name
    if not isinstance(name, str):
        raise EvalSpecError(f"name must be a string, got {name!r}")
    models, skipped = _models(kwargs.get("models"), selected_models)
    prompt = kwargs.get("prompt")
    dataset = kwargs.get("dataset")
    for key, value in (("prompt", prompt), ("dataset", dataset)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise EvalSpecError(f"{key} must be a path, got {value!r}")
    schema = kwargs.get("schema")
    if schema is not None and not hasattr(schema, "model_validate"):
        raise EvalSpecError(f"schema must be a pydantic model class, got {schema!r}")
    declared = kwargs.get("graders") or ()
    if not isinstance(declared, (list, tuple)):
        declared = (declared,)
    try:
        graders = tuple(as_grader(g, named_graders) for g in declared)
    except GraderError as exc:
        raise EvalSpecError(str(exc)) from None
    fail_on = kwargs.get("fail_on") or ()
    if isinstance(fail_on, str):
        fail_on = (fail_on,)
    from .gates import GateError, parse_gate

    try:
        for expression in fail_on:
            parse_gate(expression)
    except GateError as exc:
        raise EvalSpecError(str(exc)) from None
    strict = kwargs.get("strict", False)
    if not isinstance(strict, bool):
        raise EvalSpecError(f"strict must be True or False, got {strict!r}")
    if graders and prompt is None:
        raise EvalSpecError(
            "graders= grade the declared prompt's completion: add prompt=... (or call "
            "grade() in the test body)"
        )
    return EvalSpec(
        name=name,
        models=models,
        prompt=None if prompt is None else os.fspath(prompt),
        prompt_path=None if prompt is None else resolve_path(os.fspath(prompt), test_dir, rootdir),
        dataset=None if dataset is None else os.fspath(dataset),
        dataset_path=(
            None if dataset is None else resolve_path(os.fspath(dataset), test_dir, rootdir)
        ),
        threshold=None if threshold is None else float(threshold),
        samples=samples,
        schema=schema,
        skipped_models=skipped,
        graders=graders,
        fail_on=tuple(fail_on),
        strict=strict,
    )


def _models(marker_models: Any, selected: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Selected models narrowed by the marker's ``models``; a marker alone selects."""
    if marker_models is None:
        if not selected:
            raise EvalSpecError(
                "no model selected: pass --eval-models MODEL[,MODEL...] or set "
                "models = [...] in [tool.modelopt]"
            )
        return tuple(selected), ()
    if isinstance(marker_models, str):
        marker_models = [marker_models]
    if not isinstance(marker_models, (list, tuple)) or not all(
        isinstance(m, str) for m in marker_models
    ):
        raise EvalSpecError(f"models must be a list of model names, got {marker_models!r}")
    if not selected:
        return tuple(marker_models), ()
    kept = tuple(m for m in selected if m in marker_models)
    return kept, tuple(m for m in marker_models if m not in selected)


@dataclass(frozen=True, slots=True)  # one per test item: no __dict__ each
class EvalParam:
    """The value behind one test item: which eval, model, case and sample it is."""

    spec: EvalSpec
    model: str
    case: Case | None = None
    sample: int = 0

    @property
    def id(self) -> str:
        parts = [self.model]
        if self.case is not None:
            parts.append(self.case.id)
        if self.spec.samples > 1:
            parts.append(f"s{self.sample}")
        return "-".join(parts)


def params_for(spec: EvalSpec, cases: Sequence[Case] | None) -> list[EvalParam]:
    """Models outermost, so one model's cases run (and fail) together."""
    return [
        EvalParam(spec, model, case, sample)
        for model in spec.models
        for case in (cases if cases is not None else [None])
        for sample in range(spec.samples)
    ]


@dataclass
class CaseState:
    """What happened to one test item so far; becomes its CaseRecord at teardown."""

    param: EvalParam
    nodeid: str
    case_id: str
    grades: list[Grade] = field(default_factory=list)
    graders: list[dict[str, Any] | None] = field(default_factory=list)  # beside each grade
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

    declared: bool = False

    def add_call(self, completion: Completion, input: Any, *, declared: bool = False) -> None:
        """Count every call; the declared prompt's output is the case's, else the last call's."""
        self.calls.append(completion)
        if declared or not self.declared:
            self.input, self.output = input, completion.text
            response_id = (completion.response or {}).get("id")
            self.completion_id = str(response_id) if response_id else None
            metadata = completion.request.get("metadata") if completion.request else None
            self.completion_metadata = dict(metadata) if isinstance(metadata, dict) else None
            self.declared = self.declared or declared

    def add_grade(self, grade: Grade, grader: Grader) -> None:
        """A grade, and the grader that gave it as OpenAI JSON when it has one."""
        self.grades.append(grade)
        try:
            self.graders.append(grader.to_openai())
        except GraderError:  # a Python function
            self.graders.append(None)

    def add_judge_call(self, completion: Completion) -> None:
        self.judge_calls.append(completion)

    def record(self) -> CaseRecord:
        return CaseRecord.model_validate(self.record_fields())

    def record_fields(self) -> dict[str, Any]:
        """The CaseRecord as the JSON-ready dict its ``model_dump()`` is: every field, in
        field order, each of its field's type. Written without building the model, which
        costs more than the rest of recording a case (tests hold the two equal)."""
        calls, judge_calls = self.calls, self.judge_calls
        costs = [c.cost for c in calls]
        judge_costs = [c.cost for c in judge_calls]
        definitions = self.graders + [None] * (len(self.grades) - len(self.graders))
        grades = [
            {
                "name": g.name,
                "score": g.score,
                "passed": g.passed,
                "reason": g.reason,
                "error": None,
                "sub_scores": dict(g.sub_scores),
                "grader": d,
            }
            for g, d in zip(self.grades, definitions, strict=True)
        ]
        if self.status == "failed" and self.assert_reason is not None:
            grades.append(_assert_grade(0.0, False, self.assert_reason))
        elif self.status == "passed" and not grades:
            grades.append(_assert_grade(1.0, True, ""))
        spec, error, metadata = self.param.spec, self.error, self.completion_metadata
        usage = sum((c.usage for c in calls), Usage()) if len(calls) != 1 else calls[0].usage
        return {
            "eval": spec.name,
            "nodeid": self.nodeid,
            "model": self.param.model,
            "case_id": self.case_id,
            "sample": self.param.sample,
            "status": self.status or "error",
            "threshold": None if spec.threshold is None else float(spec.threshold),
            "input": self.input,
            "output": self.output,
            "item": dict(self.param.case) if self.param.case is not None else None,
            "completion_id": self.completion_id,
            "completion_metadata": (
                None if metadata is None else {str(k): str(v) for k, v in metadata.items()}
            ),
            "grades": grades,
            "error": None if error is None else {"kind": error.kind, "message": error.message},
            "latency_s": float(sum(c.latency_s for c in calls)) if calls else None,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
            "cost": None if None in costs else float(sum(c for c in costs if c)),
            "calls": len(calls),
            "duration_s": round(float(self.duration_s), 6),
            "note": self.note,
            "fingerprint": spec.fingerprint,
            "fail_on": list(spec.fail_on),
            "strict": spec.strict,
            "judge_calls": len(judge_calls),
            "judge_tokens": sum(c.usage.total_tokens for c in judge_calls),
            "judge_cost": (
                None if None in judge_costs else float(sum(c for c in judge_costs if c))
            ),
            "finished_at": time.time(),
        }


def _assert_grade(score: float, passed: bool, reason: str) -> dict[str, Any]:
    return {
        "name": "assert",
        "score": score,
        "passed": passed,
        "reason": reason,
        "error": None,
        "sub_scores": {},
        "grader": None,
    }


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
