"""Training files as TRL's datasets want them, and the reward that grades RFT samples.

Plain data transformations, importable without any training library: the child
(``trainer.py``) and the tests both use them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ....graders.base import GraderError, from_openai

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _text(content: Any) -> str:
    """A message's content as text (OpenAI allows a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """A message in the shape chat templates read: ``weight`` and nulls dropped, and
    OpenAI's ``developer`` role as the ``system`` role that open models' templates know."""
    role = "system" if message["role"] == "developer" else message["role"]
    out: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
    for key in ("tool_calls", "tool_call_id", "name"):
        if message.get(key):
            out[key] = message[key]
    return out


def _with_tools(out: dict[str, Any], tools: Any) -> dict[str, Any]:
    """TRL reads ``tools`` as a JSON string too, which keeps one Arrow schema for any tools."""
    if tools:
        out["tools"] = json.dumps(tools)
    return out


def sft_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, list[str]]:
    """Our SFT rows in TRL's form: (rows, "prompt_completion" | "messages", warnings).

    When each example trains exactly one assistant turn, its last message, the rows become
    conversational prompt/completion pairs: TRL then takes the loss on the completion only,
    whatever the chat template. Otherwise they stay ``messages`` (assistant-only loss where
    the template allows it).
    """
    warnings: list[str] = []
    single = all(_trains_only_last(row["messages"]) for row in rows)
    out = []
    for row in rows:
        messages = row["messages"]
        if single:
            converted = {
                "prompt": [_message(m) for m in messages[:-1]],
                "completion": [_message(messages[-1])],
            }
        else:
            converted = {"messages": [_message(m) for m in messages]}
        out.append(_with_tools(converted, row.get("tools")))
    if not single and any(
        m.get("weight") == 0 for row in rows for m in row["messages"] if m["role"] == "assistant"
    ):
        warnings.append(
            "assistant turns with weight 0 are trained like the others (TRL has no per-turn weight)"
        )
    return out, "prompt_completion" if single else "messages", warnings


def _trains_only_last(messages: list[dict[str, Any]]) -> bool:
    if not messages or messages[-1].get("role") != "assistant" or messages[-1].get("weight") == 0:
        return False
    return all(m.get("weight") == 0 for m in messages[:-1] if m.get("role") == "assistant")


def dpo_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's input/preferred_output/non_preferred_output as TRL's prompt/chosen/rejected."""
    out = []
    for row in rows:
        source = row["input"]
        converted = {
            "prompt": [_message(m) for m in source["messages"]],
            "chosen": [_message(m) for m in row["preferred_output"]],
            "rejected": [_message(m) for m in row["non_preferred_output"]],
        }
        out.append(_with_tools(converted, source.get("tools")))
    return out


ITEM_COLUMN = "modelopt_item"


def rft_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt plus the case's fields as one JSON column, so any fields fit one schema."""
    out = []
    for row in rows:
        item = {k: v for k, v in row.items() if k not in ("messages", "tools")}
        out.append(
            {
                "prompt": [_message(m) for m in row["messages"]],
                ITEM_COLUMN: json.dumps(item, ensure_ascii=False),
            }
        )
    return out


def completion_text(completion: Any) -> str:
    """What the model said: GRPO hands a list of messages (conversational) or a string."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return _text(last.get("content"))
    return _text(completion)


def grader_reward(
    grader_data: dict[str, Any], on_error: Callable[[str], None] | None = None
) -> Callable[..., list[float]]:
    """The eval's grader as a GRPO reward: its score on each completion, the row as ``item``.

    An output the grader cannot grade scores 0, as in OpenAI's RFT; ``on_error`` hears why,
    so a grader that can never run here (a judge without a client) is not silently zero.
    """

    grader = from_openai(grader_data)

    def reward(completions: list[Any], **kwargs: Any) -> list[float]:
        items = kwargs.get(ITEM_COLUMN) or [None] * len(completions)
        scores = []
        for completion, item_json in zip(completions, items, strict=True):
            item = json.loads(item_json) if item_json else {}
            try:
                scores.append(float(grader.grade(completion_text(completion), item).score))
            except GraderError as exc:
                scores.append(0.0)
                if on_error is not None:
                    on_error(str(exc))
        return scores

    reward.__name__ = grader.label.replace(" ", "_") or "grader"
    return reward
