"""``multi``: several graders combined by a formula (``calculate_output``).

The formula is parsed once by a small safe evaluator (arithmetic, ``^`` for powers, min,
max, abs, floor, ceil, exp, sqrt, log) — never ``eval``. OpenAI's docs key the sub-graders
by name (the spec types ``graders`` as a single grader; the docs' dict form is the one
OpenAI accepts and the one written here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import field_validator, model_validator

from .base import Grade, Grader, GraderError, from_openai


class Multi(Grader):
    """The combined score passes at ``pass_threshold``; without one, all sub-graders must."""

    type: Literal["multi"] = "multi"
    graders: dict[str, Grader]
    calculate_output: str
    pass_threshold: float | None = None

    @field_validator("graders", mode="before")
    @classmethod
    def _build_graders(cls, value: Any) -> Any:
        if not isinstance(value, Mapping) or not value:
            raise ValueError("graders must be a non-empty mapping of name to grader")
        built = {}
        for key, grader in value.items():
            sub = grader if isinstance(grader, Grader) else from_openai(grader)
            if isinstance(sub, Multi):
                raise ValueError("a multi grader cannot contain another multi grader")
            built[str(key)] = sub
        return built

    @model_validator(mode="after")
    def _formula_uses_known_names(self) -> Multi:
        # the formula interpreter loads with the first multi grader (start-up cost otherwise)
        from .engines.formula import Formula, FormulaError

        try:
            Formula(self.calculate_output, allowed_names=self.graders)
        except FormulaError as exc:
            raise ValueError(str(exc)) from None
        return self

    def resolved(self) -> Multi:
        return self.model_copy(
            update={"graders": {key: g.resolved() for key, g in self.graders.items()}}
        )

    def identity_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "multi",
            "graders": {key: g.identity_data() for key, g in self.graders.items()},
            "calculate_output": self.calculate_output,
        }
        if self.pass_threshold is not None:
            data["pass_threshold"] = self.pass_threshold
        return data

    def to_openai(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "multi",
            "name": self.label,
            "graders": {key: g.to_openai() for key, g in self.graders.items()},
            "calculate_output": self.calculate_output,
        }
        if self.pass_threshold is not None:
            data["pass_threshold"] = self.pass_threshold
        return data

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        grades = {key: g.grade(sample, item) for key, g in self.graders.items()}
        # OpenAI combines raw scores (a score_model's in its own range), so do we.
        scores = {key: g.sub_scores.get("raw", g.score) for key, g in grades.items()}
        from .engines.formula import Formula, FormulaError  # as above

        try:
            score = Formula(self.calculate_output).evaluate(scores)
        except FormulaError as exc:
            raise GraderError(f"grader {self.label!r}: {exc}") from None
        if self.pass_threshold is None:
            passed = all(g.passed for g in grades.values())
        else:
            passed = score >= self.pass_threshold
        parts = ", ".join(f"{k}={v:g}" for k, v in scores.items())
        return self._grade(
            score, passed, f"{self.calculate_output} = {score:g} ({parts})", sub_scores=scores
        )
