from typing import Any, Literal

from pydantic import BaseModel


class Case(BaseModel):
    """One row of data/cases.jsonl; a bad row fails collection with file:line:field."""

    id: str
    input: str  # the customer's message: what the agent is run on
    tool: Literal["lookup_order", "refund_policy", "escalate", "none"]  # the call it needs
    args: dict[str, Any] | None  # that call's arguments, when they are known exactly
    facts: list[str]  # what the final answer must say (from the tool's output)
