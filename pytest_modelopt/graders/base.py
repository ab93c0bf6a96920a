"""What every grader shares: the Grade it returns, the sample/item namespaces, templates.

Graders speak OpenAI's grader vocabulary and run locally. Templates inside a grader use
OpenAI's namespaces: ``{{ item.<field> }}`` for the case and ``{{ sample.output_text }}``,
``{{ sample.output_json }}``, ``{{ sample.output_tools }}`` for the model's output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_INPUT = "{{ sample.output_text }}"

_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class GraderError(Exception):
    """The grader could not grade (bad template, judge failure...): an *error*, not a fail."""


class Grade(BaseModel):
    """One grader's verdict on one output."""

    model_config = ConfigDict(extra="forbid")

    name: str
    score: float
    passed: bool
    reason: str = ""
    sub_scores: dict[str, float] = Field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed


class Grader(BaseModel):
    """Base of all graders: a named, serialisable rule from (sample, item) to a Grade."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str = ""

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        raise NotImplementedError

    def to_openai(self) -> dict[str, Any]:
        """This grader as OpenAI grader JSON."""
        return self.model_dump(mode="json", exclude_none=True)

    @property
    def label(self) -> str:
        return self.name or self.type


def sample_namespace(sample: Any) -> dict[str, Any]:
    """Any output (a Completion, OpenAI's sample dict, or plain text) as OpenAI's ``sample``."""
    if isinstance(sample, Mapping):
        data = dict(sample)
        data.setdefault("output_text", "")
        if "output_json" not in data:
            data["output_json"] = _parse_json(str(data["output_text"]))
        data.setdefault("output_tools", [])
        return data
    if isinstance(sample, str):
        return {"output_text": sample, "output_json": _parse_json(sample), "output_tools": []}
    text = getattr(sample, "text", None)
    if text is None:
        raise GraderError(
            f"cannot grade a {type(sample).__name__}: pass a Completion, a string or a dict "
            "with 'output_text'"
        )
    return {
        "output_text": text,
        "output_json": getattr(sample, "json", None),
        "output_tools": list(getattr(sample, "tool_calls", []) or []),
    }


def _parse_json(text: str) -> Any:
    from ..client import parse_json_output

    return parse_json_output(text)


def render(
    template: str, sample: Mapping[str, Any], item: Mapping[str, Any], *, grader: str
) -> str:
    """Fill a grader template; a literal without ``{{`` is returned as it is."""
    if "{{" not in template and "{%" not in template:
        return template
    try:
        value = _env.from_string(template).render(sample=sample, item=item)
    except jinja2.UndefinedError as exc:
        raise GraderError(f"grader {grader!r}: template {template!r}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise GraderError(f"grader {grader!r}: template {template!r}: {exc}") from None
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class FunctionGrader(Grader):
    """Any plain callable ``fn(sample, item)`` returning a Grade, a bool or a score in [0, 1]."""

    type: str = "function"
    fn: Any = None
    pass_threshold: float = 1.0

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        value = self.fn(sample, dict(item or {}))
        if isinstance(value, Grade):
            return value
        if isinstance(value, bool):
            return Grade(name=self.label, score=float(value), passed=value)
        if isinstance(value, (int, float)):
            score = float(value)
            return Grade(name=self.label, score=score, passed=score >= self.pass_threshold)
        raise GraderError(
            f"grader {self.label!r} returned {type(value).__name__}; return a bool, a number "
            "or a Grade"
        )

    def to_openai(self) -> dict[str, Any]:
        raise GraderError(f"grader {self.label!r} is a Python function and has no OpenAI JSON form")


def as_grader(grader: Any) -> Grader:
    """A Grader as it is; a plain function wrapped so it grades like one."""
    if isinstance(grader, Grader):
        return grader
    if callable(grader):
        name = getattr(grader, "__name__", "function")
        return FunctionGrader(fn=grader, name="function" if name == "<lambda>" else name)
    raise GraderError(f"{grader!r} is not a grader: pass a graders.* object or a function")
