"""Local graders users expect beyond OpenAI's vocabulary: regex, contains, numeric, length, JSON.

Each one exports to OpenAI as a ``python`` grader whose source is ``local_rules.py`` itself
plus the grader's own JSON in a header line, and ``from_openai`` recognises that header, so
the round trip is exact and the exported grader scores exactly as the local one.
"""

from __future__ import annotations

import inspect
import json
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .base import DEFAULT_INPUT, Grade, Grader, GraderError, from_openai, sample_namespace
from .engines import local_rules

if TYPE_CHECKING:
    from collections.abc import Mapping

HEADER = "# pytest-modelopt grader: "


def _usage_namespace(sample: Any) -> dict[str, Any]:
    ns = sample_namespace(sample)
    usage = getattr(sample, "usage", None)
    if usage is not None and "usage" not in ns:
        ns["usage"] = {"completion_tokens": usage.completion_tokens}
    return ns


class RuleGrader(Grader):
    """A grader computed by a self-contained rules module (``engine``), exported to OpenAI
    as a python grader whose source is that module, so both score alike."""

    engine: ClassVar[ModuleType] = local_rules

    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def namespace(self, sample: Any) -> dict[str, Any]:
        return sample_namespace(sample)

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        try:
            score, passed, reason = self.engine.evaluate(
                self.spec(), self.namespace(sample), dict(item or {})
            )
        except (KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise GraderError(f"grader {self.label!r}: {message}") from None
        return self._grade(float(score), bool(passed), str(reason))

    def to_openai(self) -> dict[str, Any]:
        spec = {**self.spec(), "name": self.label}
        source = (
            f"{HEADER}{json.dumps(spec, sort_keys=True)}\n"
            + inspect.getsource(self.engine)
            + "\n\nSPEC = "
            + repr(spec)
            + "\n\n\ndef grade(sample, item):\n"
            + "    return float(evaluate(SPEC, sample, item)[0])\n"
        )
        return {"type": "python", "name": self.label, "source": source}


class LocalGrader(RuleGrader):
    """A grader computed by local_rules on the output (or ``input``)."""

    input: Any = DEFAULT_INPUT
    threshold_field: ClassVar[str | None] = None

    def namespace(self, sample: Any) -> dict[str, Any]:
        return _usage_namespace(sample)


def local_from_python_source(source: str) -> Grader | None:
    """The local grader an exported python grader came from, if it is one of ours."""
    if not source.startswith(HEADER):
        return None
    first = source.splitlines()[0][len(HEADER) :]
    data = json.loads(first)

    return from_openai(data)


class Regex(LocalGrader):
    type: Literal["regex"] = "regex"
    pattern: str
    flags: str = ""
    mode: Literal["search", "fullmatch"] = "search"

    @model_validator(mode="after")
    def _compiles(self) -> Regex:
        if set(self.flags) - set("imsx"):
            raise ValueError(f"flags may be i, m, s and x, got {self.flags!r}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"regex /{self.pattern}/ does not compile: {exc}") from None
        return self


class ContainsAll(LocalGrader):
    type: Literal["contains_all"] = "contains_all"
    values: list[Any] = Field(min_length=1)
    case_sensitive: bool = False


class ContainsAny(LocalGrader):
    type: Literal["contains_any"] = "contains_any"
    values: list[Any] = Field(min_length=1)
    case_sensitive: bool = False


class Numeric(LocalGrader):
    type: Literal["numeric"] = "numeric"
    reference: Any
    abs_tol: float = Field(default=0.0, ge=0)
    rel_tol: float = Field(default=0.0, ge=0)


class Length(LocalGrader):
    type: Literal["length"] = "length"
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> Length:
        bounds = self.model_dump(exclude={"type", "name", "input"}, exclude_none=True)
        if not bounds:
            raise ValueError("give at least one of min/max words, chars or tokens")
        return self


class JsonMatch(LocalGrader):
    type: Literal["json_match"] = "json_match"
    input: Any = "{{ sample.output_json }}"
    expected: Any
    fields: list[str] | None = None
    tolerance: dict[str, Any] = Field(default_factory=dict)


class JsonSchema(LocalGrader):
    type: Literal["json_schema"] = "json_schema"
    input: Any = "{{ sample.output_text }}"
    json_schema: dict[str, Any]

    @field_validator("json_schema", mode="before")
    @classmethod
    def _from_pydantic(cls, value: Any) -> Any:
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value.model_json_schema()
        return value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        import jsonschema  # jsonschema costs ~30 ms to import: only when a schema grades

        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value
