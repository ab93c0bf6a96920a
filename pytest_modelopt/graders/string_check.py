"""``string_check``: OpenAI's exact / contains comparisons, scoring 1 or 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from .base import DEFAULT_INPUT, Grade, Grader, Template, render, sample_namespace

if TYPE_CHECKING:
    from collections.abc import Mapping

Operation = Literal["eq", "ne", "like", "ilike"]

_WORDS = {"eq": "equals", "ne": "differs from", "like": "contains", "ilike": "contains (any case)"}


class StringCheck(Grader):
    """eq / ne compare exactly (case-sensitive); like / ilike test containment."""

    type: Literal["string_check"] = "string_check"
    input: Template = DEFAULT_INPUT
    reference: Template
    operation: Operation = "eq"

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        ns = sample_namespace(sample)
        item = dict(item or {})
        got = render(self.input, ns, item, grader=self.label)
        ref = render(self.reference, ns, item, grader=self.label)
        if self.operation == "eq":
            ok = got == ref
        elif self.operation == "ne":
            ok = got != ref
        elif self.operation == "like":
            ok = ref in got
        else:
            ok = ref.lower() in got.lower()
        verb = _WORDS[self.operation]
        reason = (
            f"{_short(got)} {verb} {_short(ref)}"
            if ok
            else f"not: {_short(got)} {verb} {_short(ref)}"
        )
        return self._grade(1.0 if ok else 0.0, ok, reason)


def _short(text: str, limit: int = 80) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


def string_check(
    reference: str, *, operation: Operation = "eq", input: str = DEFAULT_INPUT, name: str = ""
) -> StringCheck:
    """Compare the output (or ``input``) with ``reference``: eq, ne, like (contains), ilike."""
    return StringCheck(reference=reference, operation=operation, input=input, name=name)
