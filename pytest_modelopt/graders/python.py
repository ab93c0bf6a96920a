"""``python``: OpenAI's ``grade(sample, item) -> float`` source, run in a subprocess.

Source may come from config files or shared suites, so it never runs in the test process:
a child Python in isolated mode, with a timeout, a memory limit and no secrets in its
environment, sandboxed on Linux (its own uid and namespaces: no other process, no network,
no writing the project). ``python_source.py`` has the modes; isolation() says which is in
use here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..untrusted import DataText
from .base import Grade, Grader, GraderError, sample_namespace

if TYPE_CHECKING:
    from collections.abc import Mapping


class Python(Grader):
    """Passes when the returned score reaches ``pass_threshold`` (default 1.0)."""

    type: Literal["python"] = "python"
    source: str
    pass_threshold: float | None = None
    image_tag: str | None = None
    timeout: float = Field(default=120.0, gt=0, exclude=True)

    @field_validator("source", mode="before")
    @classmethod
    def _source_is_code(cls, value: Any) -> Any:
        if isinstance(value, DataText):
            raise ValueError(
                "the source comes from a dataset value, and data is never run as code: write "
                "the grader's source in code or config"
            )
        return value

    @model_validator(mode="after")
    def _source_defines_grade(self) -> Python:
        # the child-process machinery, and the local equivalents, load with the first python
        # grader (start-up cost of every run that has none)
        from .engines.python_source import PythonGraderError, check_source

        try:
            check_source(self.source, name=self.label)
        except PythonGraderError as exc:
            raise ValueError(str(exc)) from None
        return self

    @classmethod
    def from_openai_data(cls, data: Mapping[str, Any]) -> Grader:
        from .local import local_from_python_source  # the local grader families: as above

        local = local_from_python_source(str(data.get("source", "")))
        return local if local is not None else super().from_openai_data(data)

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        from .engines.python_source import PythonGraderError, run_grade  # as above

        ns = sample_namespace(sample)
        ns.setdefault("choices", [])
        try:
            score = run_grade(
                self.source, ns, dict(item or {}), name=self.label, timeout=self.timeout
            )
        except PythonGraderError as exc:
            raise GraderError(str(exc)) from None
        threshold = 1.0 if self.pass_threshold is None else self.pass_threshold
        passed = score >= threshold
        return self._grade(score, passed, f"grade() returned {score:g}")
