"""Check a training set the way OpenAI's fine-tuning would, before anything is uploaded.

The checks follow OpenAI's documented formats and its data-preparation cookbook: known
roles, no empty content, an assistant answer to learn (SFT), one-turn pairs (DPO), a final
user turn (RFT), at least 10 examples, no example over the model's token limit. Then what
the cookbook warns about: duplicates and, for label-like answers, lopsided classes. Tokens
are estimated (about 4 characters a token, 3 per message): no tokenizer ships offline, and
an estimate is what a budget needs.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from .jobs import Issue, ValidationReport

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .jobs import Method

MIN_EXAMPLES = 10
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
# Training tokens per example (OpenAI's fine-tuning guide; longer examples are truncated).
DEFAULT_TOKEN_LIMIT = 65_536
TOKEN_LIMITS = {"gpt-3.5-turbo": 16_385}
# USD per million training tokens, as OpenAI published them; [tool.modelopt.finetune]
# training_prices overrides and extends this.
TRAINING_PRICES = {
    "gpt-4.1-2025-04-14": 25.0,
    "gpt-4.1": 25.0,
    "gpt-4.1-mini-2025-04-14": 5.0,
    "gpt-4.1-mini": 5.0,
    "gpt-4o-2024-08-06": 25.0,
    "gpt-4o": 25.0,
    "gpt-4o-mini-2024-07-18": 3.0,
    "gpt-4o-mini": 3.0,
}
MAX_LABELS = 20  # answers from at most this many distinct short values look like labels


def _error(code: str, message: str, line: int | None = None) -> Issue:
    return Issue(level="error", code=code, message=message, line=line)


def _warning(code: str, message: str, line: int | None = None) -> Issue:
    return Issue(level="warning", code=code, message=message, line=line)


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """OpenAI's per-message overhead (3) plus ~4 characters a token, plus 3 for priming."""
    total = 3
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content or "")
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"])
        total += 3 + math.ceil(len(text) / 4)
    return total


def default_epochs(n_examples: int) -> int:
    """The cookbook's default: 3 epochs, more for tiny sets, fewer for huge ones."""
    if n_examples * 3 < 100:
        return min(25, max(1, 100 // max(n_examples, 1)))
    if n_examples * 3 > 25_000:
        return max(1, 25_000 // n_examples)
    return 3


def _message_issues(messages: Any, line: int, where: str) -> list[Issue]:
    """Everything wrong with one list of messages (empty when it is well formed)."""
    if not isinstance(messages, list) or not messages:
        return [
            _error(
                "missing_messages_list", f"{where} must be a non-empty list of messages", line=line
            )
        ]
    issues = []
    for index, message in enumerate(messages):
        at = f"{where}[{index}]"
        if not isinstance(message, dict):
            issues.append(_error("data_type", f"{at} is not an object", line=line))
            continue
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            issues.append(
                _error(
                    "message_unrecognized_key", f"{at} has unknown key {unknown[0]!r}", line=line
                )
            )
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            issues.append(
                _error(
                    "unrecognized_role",
                    f"{at} has role {role!r} (expected one of {', '.join(sorted(MESSAGE_ROLES))})",
                    line=line,
                )
            )
        content = message.get("content")
        empty = content is None or (isinstance(content, str) and not content.strip())
        if empty and not message.get("tool_calls"):
            issues.append(_error("missing_content", f"{at} ({role}) has no content", line=line))
        if "weight" in message and message.get("weight") not in (0, 1):
            issues.append(_error("invalid_weight", f"{at}: weight must be 0 or 1", line=line))
    return issues


def _example_issues(method: Method, example: Any, line: int) -> tuple[list[Issue], int, str | None]:
    """Issues of one example, its estimated tokens, and its answer (for duplicates/labels)."""
    if not isinstance(example, dict):
        return (
            [_error("data_type", "not a JSON object", line=line)],
            0,
            None,
        )
    if method == "sft":
        messages: Any = example.get("messages")
        issues = _message_issues(messages, line, "messages")
        if not issues and not any(m.get("role") == "assistant" for m in messages):
            issues.append(
                _error(
                    "example_missing_assistant_message",
                    "no assistant message to learn from",
                    line=line,
                )
            )
        answer = None
        if not issues:
            last = messages[-1]
            answer = last.get("content") if last.get("role") == "assistant" else None
        return issues, estimate_tokens(messages) if not issues else 0, answer
    if method == "dpo":
        source = example.get("input")
        messages = source.get("messages") if isinstance(source, dict) else None
        preferred: Any = example.get("preferred_output")
        rejected: Any = example.get("non_preferred_output")
        issues = _message_issues(messages, line, "input.messages")
        answers = []
        for key in ("preferred_output", "non_preferred_output"):
            output = example.get(key)
            if not isinstance(output, list) or len(output) != 1:
                issues.append(
                    _error(
                        "invalid_preference",
                        f"{key} must be a list of exactly one assistant message",
                        line=line,
                    )
                )
                continue
            issues += _message_issues(output, line, key)
            if output[0].get("role") != "assistant":
                issues.append(
                    _error(
                        "invalid_preference", f"{key}[0] must be an assistant message", line=line
                    )
                )
            answers.append(output[0].get("content"))
        if len(answers) == 2 and answers[0] == answers[1]:
            issues.append(
                _error(
                    "identical_preference",
                    "preferred and non-preferred answers are the same",
                    line=line,
                )
            )
        tokens = 0
        if not issues:
            tokens = estimate_tokens([*messages, *preferred, *rejected])
        return issues, tokens, str(answers[0]) if answers else None
    messages = example.get("messages")
    issues = _message_issues(messages, line, "messages")
    if not issues and messages[-1].get("role") != "user":
        issues.append(
            _error(
                "rft_last_message_not_user",
                "the last message must be the user's (RFT samples the answer)",
                line=line,
            )
        )
    return issues, estimate_tokens(messages) if not issues else 0, None


def validate(
    method: Method,
    examples: Sequence[Any],
    *,
    base_model: str,
    n_epochs: int | None = None,
    training_prices: Mapping[str, float] | None = None,
    token_limit: int | None = None,
) -> ValidationReport:
    """Every issue of the set at once, with its token count and estimated training cost."""
    issues: list[Issue] = []
    tokens = largest = 0
    limit = token_limit or _token_limit(base_model)
    answers: list[str] = []
    seen: dict[str, int] = {}
    for line, example in enumerate(examples, start=1):
        found, count, answer = _example_issues(method, example, line)
        issues += found
        tokens += min(count, limit)
        largest = max(largest, count)
        if count > limit:
            issues.append(
                _error(
                    "example_too_long",
                    f"about {count:,} tokens, over {base_model}'s limit of "
                    f"{limit:,}: shorten it or leave it out",
                    line=line,
                )
            )
        if answer is not None:
            answers.append(answer)
        fingerprint = json.dumps(example, sort_keys=True, default=str)
        if fingerprint in seen:
            issues.append(
                _warning("duplicate", f"the same example as line {seen[fingerprint]}", line=line)
            )
        else:
            seen[fingerprint] = line
    if len(examples) < MIN_EXAMPLES:
        issues.append(
            _error(
                "too_few_examples",
                f"{len(examples)} examples; fine-tuning needs at least "
                f"{MIN_EXAMPLES} (50-100 usually show an improvement)",
            )
        )
    labels = _labels(answers)
    if labels:
        top, top_count = labels.most_common(1)[0]
        if len(labels) > 1 and top_count / sum(labels.values()) > 0.5:
            issues.append(
                _warning(
                    "class_imbalance",
                    f"{top_count} of {sum(labels.values())} answers are "
                    f"{top!r}: the model may learn to always say it",
                )
            )
        if len(labels) == 1 and len(answers) >= MIN_EXAMPLES:
            issues.append(
                _warning("class_imbalance", f"every answer is {top!r}: nothing to tell apart")
            )
    epochs = n_epochs or default_epochs(len(examples))
    price = _price(base_model, training_prices)
    return ValidationReport(
        examples=len(examples),
        issues=issues,
        tokens=tokens,
        max_example_tokens=largest,
        n_epochs=epochs,
        estimated_cost_usd=None if price is None else round(price * tokens * epochs / 1e6, 4),
        label_counts=dict(labels),
    )


def _labels(answers: Sequence[str]) -> Counter[str]:
    """Answers that look like class labels (few, short, distinct values), counted."""
    if not answers:
        return Counter()
    counts = Counter(a.strip().lower() for a in answers)
    short = all(len(a.split()) <= 3 for a in counts)
    if short and len(counts) <= MAX_LABELS and len(counts) < len(answers):
        return counts
    return Counter()


def _token_limit(model: str) -> int:
    for prefix, limit in TOKEN_LIMITS.items():
        if model.startswith(prefix):
            return limit
    return DEFAULT_TOKEN_LIMIT


def _price(model: str, overrides: Mapping[str, float] | None) -> float | None:
    prices = {**TRAINING_PRICES, **(overrides or {})}
    if model in prices:
        return prices[model]
    if model.startswith("ft:"):  # continuing a fine-tune: its base's price
        base = model.split(":")[1]
        return prices.get(base)
    return None


def read_jsonl(text: str) -> tuple[list[Any], list[Issue]]:
    """Lines of a training file; a line that is not JSON is an issue naming it."""
    examples: list[Any] = []
    issues: list[Issue] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            examples.append(json.loads(raw))
        except ValueError as exc:
            issues.append(_error("invalid_json", f"not JSON: {exc}", line=line))
    return examples, issues
