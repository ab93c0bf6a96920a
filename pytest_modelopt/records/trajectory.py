"""What an agent did in one case: its items (messages, tool calls and outputs, handoffs...).

The format agreed for issue 18 ("Agents and tools"): adapters (the Agents SDK, the local
model's tool loop, the Responses API) build it, ``CaseRecord.trajectory`` stores it, and
graders read it as ``sample.trajectory``, a plain dict of exactly this shape. Strict on
purpose (unknown fields are refused): a misspelt field from an adapter must fail loudly,
not vanish from the record a grader judges.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ItemKind = Literal["message", "tool_call", "tool_output", "handoff", "guardrail", "reasoning"]


class Item(BaseModel):
    """One step of a trajectory; which fields are set depends on ``kind``."""

    model_config = ConfigDict(extra="forbid")

    kind: ItemKind
    agent: str | None = None  # the agent that produced it
    role: str | None = None  # a message's role
    content: str | None = None  # message text, reasoning summary, guardrail message
    name: str | None = None  # tool name; handoff target agent; guardrail name
    # tool call arguments: the parsed JSON object when they parse, else the raw string
    arguments: dict[str, Any] | str | None = None
    call_id: str | None = None  # pairs a tool_call with its tool_output
    output: str | None = None  # a tool's output text
    error: str | None = None  # a tool that raised: the exception's type and message


class Trajectory(BaseModel):
    """An agent run: its items in order, the model calls it made, its final output."""

    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(default_factory=list)
    turns: int = Field(default=0, ge=0)  # model calls made
    final_output: str | None = None

    def tool_calls(self) -> list[Item]:
        return [item for item in self.items if item.kind == "tool_call"]
