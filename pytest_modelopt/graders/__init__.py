"""Graders: OpenAI's grader vocabulary, run locally, plus local extras and LLM judges.

Every constructor returns a frozen grader with ``grade(sample, item) -> Grade``, a
``name``, and ``to_openai()``; ``from_openai(json)`` builds one back. A bad definition
(unknown type, a regex that does not compile, a threshold outside the metric's range, a
formula naming an unknown grader) raises ``GraderError`` naming the grader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from .base import (
    DEFAULT_INPUT,
    FunctionGrader,
    Grade,
    Grader,
    GraderError,
    as_grader,
    from_openai,
    function,
    grader_types,
    sample_namespace,
)

# These modules share their names with the constructors below, so they are imported before
# the functions are defined (a later import would rebind the name to the module).
from .multi import Multi
from .python import Python
from .string_check import StringCheck
from .text_similarity import TextSimilarity

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .engines.similarity import Metric
    from .judges import LabelModel, ScoreModel, refusal
    from .local import ContainsAll, ContainsAny, JsonMatch, JsonSchema, Length, Numeric, Regex
    from .trajectories import MaxToolCalls, MaxTurns, ToolCalled, ToolNotCalled, TrajectoryMatch

# The judges and the local rules are imported when first used.
_FAMILIES = {
    "LabelModel": "judges",
    "ScoreModel": "judges",
    "refusal": "judges",
    "ContainsAll": "local",
    "ContainsAny": "local",
    "JsonMatch": "local",
    "JsonSchema": "local",
    "Length": "local",
    "Numeric": "local",
    "Regex": "local",
    "MaxToolCalls": "trajectories",
    "MaxTurns": "trajectories",
    "ToolCalled": "trajectories",
    "ToolNotCalled": "trajectories",
    "TrajectoryMatch": "trajectories",
}


def __getattr__(name: str) -> Any:
    module = _FAMILIES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


G = TypeVar("G", bound=Grader)


def _make(cls: type[G], **kwargs: Any) -> G:
    """Build a grader; a bad argument is one GraderError naming the grader and the field."""
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        name = kwargs.get("name") or cls.model_fields["type"].default
        raise GraderError(f"grader {name!r}: {where + ': ' if where else ''}{message}") from None


def string_check(
    reference: str, *, operation: str = "eq", input: str = DEFAULT_INPUT, name: str = ""
) -> StringCheck:
    """Compare the output (or ``input``) with ``reference``: eq, ne, like (contains), ilike."""
    return _make(StringCheck, reference=reference, operation=operation, input=input, name=name)


def text_similarity(
    reference: str,
    *,
    evaluation_metric: Metric = "fuzzy_match",
    pass_threshold: float = 0.8,
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> TextSimilarity:
    """Similarity in [0, 1] by one of OpenAI's metrics; passes at ``pass_threshold``."""
    return _make(
        TextSimilarity,
        reference=reference,
        evaluation_metric=evaluation_metric,
        pass_threshold=pass_threshold,
        input=input,
        name=name,
    )


def score_model(
    input: str | Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    range: tuple[float, float] = (0.0, 1.0),
    pass_threshold: float | None = None,
    sampling_params: Mapping[str, Any] | None = None,
    name: str = "",
) -> ScoreModel:
    """An LLM judge scoring within ``range``; ``input`` is a template or a list of messages."""
    from .judges import ScoreModel  # a grader family loads when first used (start-up cost)

    return _make(
        ScoreModel,
        input=input,
        model=model,
        range=range,
        pass_threshold=pass_threshold,
        sampling_params=dict(sampling_params) if sampling_params else None,
        name=name,
    )


def label_model(
    input: str | Sequence[Mapping[str, Any]],
    *,
    labels: Sequence[str],
    passing_labels: Sequence[str],
    model: str | None = None,
    name: str = "",
) -> LabelModel:
    """An LLM judge choosing one of ``labels``; passes on one of ``passing_labels``."""
    from .judges import LabelModel  # a grader family loads when first used (start-up cost)

    return _make(
        LabelModel,
        input=input,
        labels=list(labels),
        passing_labels=list(passing_labels),
        model=model,
        name=name,
    )


def python(
    source: str, *, pass_threshold: float | None = None, name: str = "", timeout: float = 120.0
) -> Python:
    """OpenAI's ``def grade(sample, item) -> float`` source, run in a subprocess."""
    return _make(Python, source=source, pass_threshold=pass_threshold, name=name, timeout=timeout)


def multi(
    graders: Mapping[str, Grader | Mapping[str, Any]],
    calculate_output: str,
    *,
    pass_threshold: float | None = None,
    name: str = "",
) -> Multi:
    """Combine named graders with a formula, e.g. ``"(name + email) / 2"``."""
    return _make(
        Multi,
        graders=dict(graders),
        calculate_output=calculate_output,
        pass_threshold=pass_threshold,
        name=name,
    )


def regex(
    pattern: str,
    *,
    flags: str = "",
    mode: str = "search",
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> Regex:
    """The output contains (``search``) or is (``fullmatch``) a match of ``pattern``."""
    from .local import Regex  # a grader family loads when first used (start-up cost)

    return _make(Regex, pattern=pattern, flags=flags, mode=mode, input=input, name=name)


def contains_all(
    values: Sequence[Any],
    *,
    case_sensitive: bool = False,
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> ContainsAll:
    """Every value appears in the output; the score is the share that do."""
    from .local import ContainsAll  # a grader family loads when first used (start-up cost)

    return _make(
        ContainsAll, values=list(values), case_sensitive=case_sensitive, input=input, name=name
    )


def contains_any(
    values: Sequence[Any],
    *,
    case_sensitive: bool = False,
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> ContainsAny:
    """At least one value appears in the output."""
    from .local import ContainsAny  # a grader family loads when first used (start-up cost)

    return _make(
        ContainsAny, values=list(values), case_sensitive=case_sensitive, input=input, name=name
    )


def json_schema(
    schema: Mapping[str, Any] | type[BaseModel], *, input: str = DEFAULT_INPUT, name: str = ""
) -> JsonSchema:
    """The output is JSON that validates against a JSON Schema or a pydantic model."""
    value = schema if isinstance(schema, type) else dict(schema)
    from .local import JsonSchema  # a grader family loads when first used (start-up cost)

    return _make(JsonSchema, json_schema=value, input=input, name=name)


def json_match(
    expected: Mapping[str, Any] | str,
    *,
    fields: Sequence[str] | None = None,
    tolerance: Mapping[str, Any] | None = None,
    input: str = "{{ sample.output_json }}",
    name: str = "",
) -> JsonMatch:
    """Field-wise equality with ``expected`` (a mapping or a template such as
    ``"{{ item.answer }}"``); ``tolerance`` gives a number's absolute tolerance, or
    ``"ignore_case"`` for a string. The score is the share of fields that match."""
    from .local import JsonMatch  # a grader family loads when first used (start-up cost)

    return _make(
        JsonMatch,
        expected=expected,
        fields=list(fields) if fields else None,
        tolerance=dict(tolerance or {}),
        input=input,
        name=name,
    )


def numeric(
    reference: float | str,
    *,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> Numeric:
    """The number in the output equals ``reference`` within the tolerances."""
    from .local import Numeric  # a grader family loads when first used (start-up cost)

    return _make(
        Numeric, reference=reference, abs_tol=abs_tol, rel_tol=rel_tol, input=input, name=name
    )


def length(
    *,
    min_words: int | None = None,
    max_words: int | None = None,
    min_chars: int | None = None,
    max_chars: int | None = None,
    min_tokens: int | None = None,
    max_tokens: int | None = None,
    input: str = DEFAULT_INPUT,
    name: str = "",
) -> Length:
    """A length budget in words, characters or completion tokens (tokens need a Completion)."""
    from .local import Length  # a grader family loads when first used (start-up cost)

    return _make(
        Length,
        min_words=min_words,
        max_words=max_words,
        min_chars=min_chars,
        max_chars=max_chars,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
        input=input,
        name=name,
    )


def tool_called(
    name: str,
    args: Mapping[str, Any] | None = None,
    *,
    match: Literal["subset", "exact"] = "subset",
    times: int | None = None,
    grader_name: str = "",
) -> ToolCalled:
    """The agent called the tool ``name`` (``times``: exactly that often), with ``args``
    when given: ``match="subset"`` these keys and values at any depth, ``"exact"`` these and
    no others. Reads ``sample.trajectory``; ``grader_name`` names the grader
    (default ``tool_called:<name>``)."""
    from .trajectories import ToolCalled  # a grader family loads when first used (start-up)

    return _make(
        ToolCalled,
        tool=name,
        args=None if args is None else dict(args),
        match=match,
        times=times,
        name=grader_name,
    )


def tool_not_called(name: str, *, grader_name: str = "") -> ToolNotCalled:
    """The agent never called the tool ``name``."""
    from .trajectories import ToolNotCalled  # a grader family loads when first used

    return _make(ToolNotCalled, tool=name, name=grader_name)


def trajectory(
    expected: Sequence[str | Mapping[str, Any]],
    *,
    order: Literal["exact", "in_order", "any_order"] = "exact",
    match: Literal["subset", "exact"] = "subset",
    name: str = "",
) -> TrajectoryMatch:
    """The agent's tool calls against ``expected`` (tool names, or ``{"name": ...,
    "arguments": {...}}``). It passes, scoring 1, when ``order="exact"``: the same calls in
    the same order and no others; ``"in_order"``: the expected calls in order, others
    allowed between; ``"any_order"``: every expected call, others allowed. A failure
    scores F1 over calls (partial credit), so the score is 1 exactly when it passes."""
    from .trajectories import TrajectoryMatch  # a grader family loads when first used

    calls = [c if isinstance(c, str) else dict(c) for c in expected]
    return _make(TrajectoryMatch, expected=calls, order=order, match=match, name=name)


def max_turns(n: int, *, name: str = "") -> MaxTurns:
    """The agent made at most ``n`` model calls."""
    from .trajectories import MaxTurns  # a grader family loads when first used

    return _make(MaxTurns, n=n, name=name)


def max_tool_calls(n: int, *, name: str = "") -> MaxToolCalls:
    """The agent made at most ``n`` tool calls."""
    from .trajectories import MaxToolCalls  # a grader family loads when first used

    return _make(MaxToolCalls, n=n, name=name)


__all__ = [
    "ContainsAll",
    "ContainsAny",
    "FunctionGrader",
    "Grade",
    "Grader",
    "GraderError",
    "JsonMatch",
    "JsonSchema",
    "LabelModel",
    "Length",
    "MaxToolCalls",
    "MaxTurns",
    "Multi",
    "Numeric",
    "Python",
    "Regex",
    "ScoreModel",
    "StringCheck",
    "TextSimilarity",
    "ToolCalled",
    "ToolNotCalled",
    "TrajectoryMatch",
    "as_grader",
    "contains_all",
    "contains_any",
    "from_openai",
    "function",
    "grader_types",
    "json_match",
    "json_schema",
    "label_model",
    "length",
    "max_tool_calls",
    "max_turns",
    "multi",
    "numeric",
    "python",
    "refusal",
    "regex",
    "sample_namespace",
    "score_model",
    "string_check",
    "text_similarity",
    "tool_called",
    "tool_not_called",
    "trajectory",
]
