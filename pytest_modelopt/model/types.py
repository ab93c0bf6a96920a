"""The values every stage reads about a model call: its completion, usage and errors.

A leaf: it imports nothing from the package, so graders, records, prices and reports can
use these types without pulling in the HTTP client (whose ``openai`` import costs ~0.9 s).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token counts in one shape for both APIs; cached and reasoning are subsets, not extras."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass
class Completion:
    """What a model answered, with what it cost; graders and records read this."""

    text: str
    model: str
    api: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    latency_s: float = 0.0
    cached: bool = False
    request: dict[str, Any] = field(default_factory=dict, repr=False)
    response: dict[str, Any] | None = field(default=None, repr=False)
    # an agent or tool loop's run in records/trajectory.py's shape (graders read it as
    # sample.trajectory); None for a single call
    trajectory: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def incomplete(self) -> str | None:
        """Why the answer stopped short, or None when it is whole: a Responses API
        ``status: incomplete`` (``max_output_tokens``, ``content_filter``) or a chat choice
        that finished on ``length`` or ``content_filter``. Such an answer is still graded
        (a cut-short answer is the model's, under the eval's settings); the case notes it."""
        data = self.response or {}
        if data.get("status") == "incomplete":
            details = data.get("incomplete_details") or {}
            return str(details.get("reason") or "incomplete")
        choices = data.get("choices") or []
        finish = (
            choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
        )
        return str(finish) if finish in ("length", "content_filter") else None

    @property
    def reasoning(self) -> list[str]:
        """The summaries of a Responses API answer's reasoning items, in order (empty when
        the model gave none: ask with ``reasoning={"summary": "auto"}``); the tokens spent
        are ``usage.reasoning_tokens`` either way."""
        return [
            "\n".join(str(s.get("text") or "") for s in item.get("summary") or [])
            for item in (self.response or {}).get("output") or []
            if isinstance(item, dict) and item.get("type") == "reasoning"
        ]

    @functools.cached_property
    def json(self) -> Any:
        """The output parsed as JSON (also inside a ``` fence), or None when it isn't JSON."""
        return parse_json_output(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 80 else self.text[:79] + "…"
        return f"Completion({text!r}, model={self.model!r})"


def parse_json_output(text: str) -> Any:
    stripped = text.strip()
    fence = re.match(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```$", stripped, re.DOTALL)
    if fence:
        stripped = fence.group(1).strip()
    if not stripped or stripped[0] not in '[{"0123456789-tfn':
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


class ModelCallError(Exception):
    """A call that failed for good; recorded as an *error* on its case, never as a grade."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        model: str = "",
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.model = model
        self.status = status
        self.attempts = attempts


class AgentError(Exception):
    """An agent run that went wrong on its case, not in a model call: a tool raised, the
    ``agent=`` reference does not import, the agent graph cannot run on the eval's model.
    Recorded as an *error* of the case (``kind``: ``tool`` or ``agent``), never a crash."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for hooks and records: the eval, case and sample behind a request."""

    endpoint: str
    model: str
    sample: int = 0
    eval: str | None = None
    case_id: str | None = None


RequestHook = Callable[[dict[str, Any], CallContext], None]
