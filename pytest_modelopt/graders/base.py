"""What every grader shares: the Grade it returns, the sample/item namespaces, templates.

Graders speak OpenAI's grader vocabulary and run locally. Templates inside a grader use
OpenAI's namespaces: ``{{ item.<field> }}`` for the case and ``{{ sample.output_text }}``,
``{{ sample.output_json }}``, ``{{ sample.output_tools }}`` for the model's output.
Every grader is a frozen pydantic model whose fields are OpenAI's JSON fields, so
``to_openai()`` / ``from_openai()`` round-trip exactly.

Templates are strings written in code or config. A value read from a dataset
(:class:`~pytest_modelopt.untrusted.DataText`, e.g. ``reference=case["category"]``) is data:
it is compared literally and never rendered, and it is exported to OpenAI's JSON as a
template that renders to that literal text.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

import jinja2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from ..model.types import parse_json_output
from ..templating import BoundedEnvironment
from ..templating import render as render_bounded
from ..untrusted import DataText

DEFAULT_INPUT = "{{ sample.output_text }}"


def _keep_data(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate as a string, but keep a dataset value's mark (pydantic would drop it)."""
    validated = handler(value)
    return value if isinstance(value, DataText) else validated


#: A grader field that is a template when written in code or config, literal when it is data.
Template = Annotated[str, WrapValidator(_keep_data)]

_env = BoundedEnvironment()
_registry: dict[str, type[Grader]] = {}


class GraderError(Exception):
    """The grader could not grade (bad definition, judge failure...): an *error*, not a fail."""


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
    registered: ClassVar[bool] = True  # found by from_openai() under its ``type``

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        default = cls.model_fields["type"].default
        if cls.registered and isinstance(default, str):
            _registry[default] = cls

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_type(cls, data: Any) -> Any:
        """OpenAI requires a name; an unnamed grader is named after its type."""
        if isinstance(data, dict) and not data.get("name"):
            default = cls.model_fields["type"].default
            if isinstance(default, str):
                return {**data, "name": default}
        return data

    @classmethod
    def from_openai_data(cls, data: Mapping[str, Any]) -> Grader:
        """Build from JSON; a bad field is a GraderError naming the grader and the field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "grader"
            name = data.get("name") or data.get("type")
            raise GraderError(f"grader {name!r}: {where}: {first['msg']}") from None

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        raise NotImplementedError

    def to_openai(self) -> dict[str, Any]:
        """This grader as OpenAI grader JSON (``name`` always set). A literal dataset value
        that looks like a template is written as a template that renders to it."""
        data = self.model_dump(mode="json", exclude_none=True)
        for key in type(self).model_fields:
            value = getattr(self, key)
            if isinstance(value, DataText) and _looks_like_template(value):
                data[key] = "{{ " + json.dumps(str(value)) + " }}"
        data["name"] = self.label
        return data

    @property
    def label(self) -> str:
        return self.name or self.type

    def resolved(self) -> Grader:
        """This grader as it grades now: a judge that names no model gets the judge model
        of the grading context (``judge_model`` in the settings)."""
        return self

    def identity_data(self) -> dict[str, Any]:
        """What makes this grader judge the way it does: its OpenAI JSON without the
        display name (a renamed grader is the same judge; a changed prompt is not)."""
        try:
            data = self.to_openai()
        except GraderError:
            data = self.model_dump(mode="json", exclude={"name"}, exclude_none=True)
        data.pop("name", None)
        return data

    def identity(self) -> str:
        """The first 16 hex digits of sha256 over the canonical JSON of ``identity_data``:
        human labels are bound to it, so labels given to another version of a judge (its
        model, prompt or parameters changed since) are not counted as this one's."""
        raw = json.dumps(
            self.resolved().identity_data(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]

    def _grade(self, score: float, passed: bool, reason: str = "", **extra: Any) -> Grade:
        return Grade(name=self.label, score=score, passed=passed, reason=reason, **extra)


_FAMILY_MODULES = (
    "judges",
    "local",
    "multi",
    "python",
    "string_check",
    "text_similarity",
    "trajectories",
)


def _load_families() -> None:
    """Register every grader type; the package imports families lazily."""

    for module in _FAMILY_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def grader_types() -> list[str]:
    _load_families()
    return sorted(_registry)


def from_openai(data: Mapping[str, Any]) -> Grader:
    """A grader from OpenAI grader JSON (or one of this package's local types)."""
    if not isinstance(data, Mapping):
        raise GraderError(f"a grader must be a mapping with a 'type', got {type(data).__name__}")
    kind = data.get("type")
    if str(kind) not in _registry:
        _load_families()
    cls = _registry.get(str(kind))
    if cls is None:
        known = ", ".join(grader_types())
        raise GraderError(f"unknown grader type {kind!r} (known: {known})")
    return cls.from_openai_data(data)


def sample_namespace(sample: Any) -> dict[str, Any]:
    """Any output (a Completion, OpenAI's sample dict, or plain text) as OpenAI's ``sample``."""
    if isinstance(sample, Mapping):
        data = dict(sample)
        data.setdefault("output_text", "")
        if "output_json" not in data:
            data["output_json"] = _parse_json(str(data["output_text"]))
        data.setdefault("output_tools", [])
        if isinstance(data.get("trajectory"), BaseModel):
            data["trajectory"] = data["trajectory"].model_dump(mode="json")
        if isinstance(data.get("trajectory"), dict):
            data["trajectory"] = _JsonDict(data["trajectory"])
        return data
    if isinstance(sample, str):
        return {"output_text": sample, "output_json": _parse_json(sample), "output_tools": []}
    text = getattr(sample, "text", None)
    if text is None:
        raise GraderError(
            f"cannot grade a {type(sample).__name__}: pass a Completion, a string or a dict "
            "with 'output_text'"
        )
    data = {
        "output_text": text,
        "output_json": getattr(sample, "json", None),
        "output_tools": list(getattr(sample, "tool_calls", []) or []),
    }
    # an agent's result carries what it did (records/trajectory.py's shape): graders read
    # it as sample.trajectory, a plain dict, as an exported python grader would
    trajectory = getattr(sample, "trajectory", None)
    if trajectory is not None:
        data["trajectory"] = _JsonDict(
            trajectory.model_dump(mode="json") if isinstance(trajectory, BaseModel) else trajectory
        )
    return data


class _JsonDict(dict[str, Any]):
    """A dict that a template shows as JSON: ``{{ sample.trajectory }}`` in a judge's
    prompt gives the model the run as JSON, not Python's repr of it. (In a template,
    ``sample.trajectory["items"]``: ``.items`` is the dict's method, as in jinja2.)"""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


def _parse_json(text: str) -> Any:
    return parse_json_output(text)


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _env.from_string(template)


def _looks_like_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render(
    template: str, sample: Mapping[str, Any], item: Mapping[str, Any], *, grader: str
) -> str:
    """Fill a grader template; data, and text without template syntax, is returned as it is."""
    if isinstance(template, DataText):
        return str(template)
    if not _looks_like_template(template):
        return template
    try:
        value = render_bounded(_compiled(template), {"sample": sample, "item": item})
    except jinja2.UndefinedError as exc:
        raise GraderError(f"grader {grader!r}: template {template!r}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise GraderError(f"grader {grader!r}: template {template!r}: {exc}") from None
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def check_pass_threshold(value: float | None, low: float, high: float, grader: str) -> None:
    if value is not None and not low <= value <= high:
        raise GraderError(
            f"grader {grader!r}: pass_threshold {value} is outside the score range "
            f"[{low:g}, {high:g}]"
        )


class FunctionGrader(Grader):
    """Any plain callable ``fn(sample, item)`` returning a Grade, a bool or a score in [0, 1]."""

    registered: ClassVar[bool] = False
    type: str = "function"
    fn: Callable[..., Any]
    pass_threshold: float = 1.0

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        value = self.fn(sample, dict(item or {}))
        if isinstance(value, Grade):
            return value
        if isinstance(value, bool):
            return self._grade(float(value), value)
        if isinstance(value, (int, float)):
            score = float(value)
            return self._grade(score, score >= self.pass_threshold)
        raise GraderError(
            f"grader {self.label!r} returned {type(value).__name__}; return a bool, a number "
            "or a Grade"
        )

    def identity_data(self) -> dict[str, Any]:
        """A function is known by where it is defined: its module and qualified name."""
        where = f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"
        return {"type": self.type, "function": where, "pass_threshold": self.pass_threshold}

    def to_openai(self) -> dict[str, Any]:
        raise GraderError(
            f"grader {self.label!r} is a Python function and has no OpenAI JSON form; "
            "use graders.python(source=...) for a grader OpenAI can run"
        )


def function(fn: Callable[..., Any], *, name: str = "", pass_threshold: float = 1.0) -> Grader:
    """Wrap ``fn(sample, item)`` (returning a bool, a score or a Grade) as a grader."""
    label = name or getattr(fn, "__name__", "function")
    return FunctionGrader(
        fn=fn, name="function" if label == "<lambda>" else label, pass_threshold=pass_threshold
    )


GraderLike = Grader | Callable[..., Any] | Mapping[str, Any] | str


def as_grader(grader: Any, named: Mapping[str, Grader] | None = None) -> Grader:
    """A Grader from a grader, a function, OpenAI JSON, or the name of a configured grader."""
    if isinstance(grader, Grader):
        return grader
    if isinstance(grader, str):
        if named and grader in named:
            return named[grader]
        known = ", ".join(sorted(named or {})) or "none configured"
        raise GraderError(f"no grader named {grader!r} in [tool.modelopt.graders] (known: {known})")
    if isinstance(grader, Mapping):
        return from_openai(grader)
    if callable(grader):
        return function(grader)
    raise GraderError(f"{grader!r} is not a grader: pass a graders.* object or a function")
