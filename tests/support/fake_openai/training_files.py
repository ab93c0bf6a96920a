"""What a fine-tuning file must look like for each method, as OpenAI's guides state it.

This is deliberately a second, independent reading of those guides: the plugin validates
the files it writes with its own code, and a test that passes only because both sides
share one misreading proves nothing. So nothing here may be imported from (or shared
with) ``pytest_modelopt``; when the two disagree, one of them is wrong and a test says so.
It is its own module because the fine-tuning family only asks one question of it
(``file_problem``), and the answers are long.
"""

from __future__ import annotations

import json
from typing import Any, Final

#: "Your file must have at least 10 lines" (SFT guide); the same for DPO and RFT.
MIN_EXAMPLES: Final = 10
_SFT_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_SFT_MESSAGE_KEYS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight", "refusal"}
)
#: RFT prompts: the guide names developer/user/assistant/tool; system is what a chat
#: template renders, and reasoning models read it as developer.
_RFT_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})


def file_problem(kind: str, data: bytes, what: str, minimum: int) -> str | None:
    """Why a fine-tuning file does not fit ``kind``'s format (naming the line), or None."""
    examples, problem = _ft_examples(data)
    if problem is not None:
        return problem
    check = {"supervised": _sft_problem, "dpo": _dpo_problem, "reinforcement": _rft_problem}[kind]
    for number, example in enumerate(examples, 1):
        problem = check(example)
        if problem is not None:
            return f"Invalid file format. Line {number}, {problem}"
    if len(examples) < minimum:
        return (
            f"{what} file has {len(examples)} example(s), but must have at least "
            f"{minimum} examples."
        )
    return None


def _ft_examples(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """A fine-tuning file's lines as JSON objects, or why it is not JSONL."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], "The file is not UTF-8 encoded."
    lines = text.split("\n")
    if lines and not lines[-1].strip():
        lines.pop()
    examples: list[dict[str, Any]] = []
    jsonl = "Expected file to have JSONL format, where every line is a valid JSON dictionary."
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except ValueError:
            return [], f"{jsonl} Line {number} is not valid JSON."
        if not isinstance(item, dict):
            return [], f"{jsonl} Line {number} is not a dictionary."
        examples.append(item)
    return examples, None


def _has_content(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content)
    )


def _message_problem(message: Any, number: int, roles: frozenset[str]) -> str | None:
    """What is wrong with one chat message of a training example, or None."""
    where = f"message {number}"
    if not isinstance(message, dict):
        return f"{where} is not a dictionary."
    role = message.get("role")
    if role not in roles:
        return f"{where}: unrecognized role {role!r}; expected one of {sorted(roles)}."
    extra = sorted(set(message) - _SFT_MESSAGE_KEYS)
    if extra:
        return f"{where}: unrecognized key {extra[0]!r}."
    calls = message.get("tool_calls") or message.get("function_call")
    if not (role == "assistant" and calls and message.get("content") is None) and not (
        _has_content(message.get("content"))
    ):
        return f"{where}: missing or empty 'content'."
    weight = message.get("weight")
    if "weight" in message and (role != "assistant" or type(weight) is not int or weight > 1):
        return f"{where}: 'weight' must be 0 or 1, and only on assistant messages."
    return None


def _messages_problem(messages: Any, key: str, roles: frozenset[str]) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"key {key!r}: expected a non-empty list of messages."
    for number, message in enumerate(messages, 1):
        problem = _message_problem(message, number, roles)
        if problem is not None:
            return f"key {key!r}, {problem}"
    return None


def _sft_problem(example: dict[str, Any]) -> str | None:
    """Chat format: ``messages`` with at least one assistant turn (the trained part)."""
    messages = example.get("messages")
    problem = _messages_problem(messages, "messages", _SFT_ROLES)
    if problem is not None:
        return problem
    assert isinstance(messages, list)  # what _messages_problem checked first
    if not any(m.get("role") == "assistant" for m in messages):
        return "key 'messages': at least one message must be from the assistant."
    if "tools" in example and not isinstance(example["tools"], list):
        return "key 'tools': expected a list."
    return None


def _dpo_problem(example: dict[str, Any]) -> str | None:
    """Preference format: ``input.messages`` plus one preferred and one non-preferred answer."""
    input_ = example.get("input")
    if not isinstance(input_, dict):
        return "key 'input': expected an object with 'messages'."
    problem = _messages_problem(input_.get("messages"), "input.messages", _SFT_ROLES)
    if problem is not None:
        return problem
    if input_["messages"][-1].get("role") == "assistant":
        return "key 'input.messages': the last message must not be from the assistant."
    for key in ("preferred_output", "non_preferred_output"):
        output = example.get(key)
        if not isinstance(output, list) or len(output) != 1:
            return f"key {key!r}: expected a list of exactly one assistant message."
        problem = _message_problem(output[0], 1, frozenset({"assistant"}))
        if problem is not None:
            return f"key {key!r}, {problem}"
        if not isinstance(output[0].get("content"), str):
            return f"key {key!r}: the assistant message must be text."
    return None


def _rft_problem(example: dict[str, Any]) -> str | None:
    """Reinforcement format: a prompt ending in a user turn; other keys are the grader's."""
    messages = example.get("messages")
    problem = _messages_problem(messages, "messages", _RFT_ROLES)
    if problem is not None:
        return problem
    assert isinstance(messages, list)  # what _messages_problem checked first
    if messages[-1].get("role") != "user":
        return "key 'messages': the last message must be from the user."
    if "tools" in example and not isinstance(example["tools"], list):
        return "key 'tools': expected a list."
    return None
