"""Templates written in code or config (prompt files, grader templates), rendered in
jinja2's sandbox, within bounds.

jinja2's ``SandboxedEnvironment`` keeps a template away from Python's internals (no
attribute starting with ``_``, no unsafe callables), provided jinja2 itself has no known
sandbox escape: the package requires jinja2 >= 3.1.6 (3.1.5 let a template reach
``os.environ`` through the ``attr`` filter, CVE-2025-27516). Data never gets here as a
template (see ``untrusted.DataText``).

Bounds keep a template written by mistake from hanging a run or filling memory; each is a
:class:`TemplateLimitError` (a ``jinja2.TemplateError``), reported like any template error:

- at most :data:`MAX_OUTPUT` characters of output, checked as it is produced;
- at most :data:`MAX_ITERATIONS` steps of ``range()`` loops in one rendering, in all
  (nested loops multiply: two nested ``range(1000)`` already reach it);
- ``*`` and ``**`` that would build a string, list or number past the output bound are
  refused before they run;
- at most :data:`MAX_SECONDS` of rendering, in the rendering thread's CPU time (a render
  that waits for a core on a loaded machine is not a runaway template), checked every 256
  ``range()`` steps and pieces of output, and at the end.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

MAX_OUTPUT = 1_000_000
MAX_ITERATIONS = 100_000
MAX_SECONDS = 2.0


class TemplateLimitError(jinja2.TemplateError):
    """A template went past one of the rendering bounds (see the module docstring)."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_ITERATIONS:
            raise TemplateLimitError(
                f"the template's range() loops ran past {MAX_ITERATIONS:,} steps"
            )
        if not self.steps % 256:
            self.check_time()

    def check_time(self) -> None:
        # the render's own CPU time, not the wall clock: on a loaded CI machine a trivial
        # render can wait seconds for a core or the GIL, and that is not the template's doing
        if time.thread_time() > self.deadline:
            raise TemplateLimitError(f"the template took more than {MAX_SECONDS:g}s to render")


_budget: ContextVar[_Budget | None] = ContextVar("modelopt_template_budget", default=None)


def _bounded_range(*args: int) -> Iterator[int]:
    steps = range(*args)
    budget = _budget.get()
    if budget is None:  # outside render(): jinja's own cap
        if len(steps) > MAX_ITERATIONS:
            raise TemplateLimitError(f"range() of more than {MAX_ITERATIONS:,} steps")
        yield from steps
        return
    for value in steps:
        budget.step()
        yield value


class BoundedEnvironment(SandboxedEnvironment):
    """jinja2's sandbox with StrictUndefined (a missing field is an error that names it,
    never an empty string sent to a paying API), no autoescaping (prompts are not HTML),
    and the bounds of the module docstring."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, **options)
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int)
                if sized and len(seq) * count > MAX_OUTPUT:
                    raise TemplateLimitError(
                        f"the template builds a sequence of {len(seq) * count:,} items"
                    )
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
            raise TemplateLimitError(f"the template raises a number to the power {right}")
        return super().call_binop(context, operator, left, right)


def render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render within the bounds; raises TemplateLimitError past one, and jinja2's errors."""
    budget = _Budget(deadline=time.thread_time() + MAX_SECONDS)
    token = _budget.set(budget)
    try:
        pieces: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(
                    f"the template's output is longer than {MAX_OUTPUT:,} characters"
                )
            pieces.append(piece)
            if not len(pieces) % 256:
                budget.check_time()
        budget.check_time()
        return "".join(pieces)
    finally:
        _budget.reset(token)
