"""What the fake OpenAI server answers on an agent's turns, for the agent tests."""

from __future__ import annotations

from typing import Any


def answer_from_tool(body: dict[str, Any]) -> str:
    """The fake model's turn after the tool ran: it reads the tool's output back (a
    Responses ``function_call_output`` item, or a Chat Completions ``tool`` message)."""
    items = body.get("input") or body.get("messages") or []
    outputs = [
        item["output"] if item.get("type") == "function_call_output" else item["content"]
        for item in items
        if item.get("type") == "function_call_output" or item.get("role") == "tool"
    ]
    return f"It is {outputs[-1]}."
