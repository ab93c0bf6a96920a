"""Check a training set the way OpenAI's fine-tuning would, before anything is uploaded.

The checks follow OpenAI's documented formats and its data-preparation cookbook: known
roles, no empty content, an assistant answer to learn (SFT), one-turn pairs (DPO), a final
user turn (RFT), at least 10 examples, no example over the model's token limit. Then what
the cookbook warns about: duplicates and, for label-like answers, lopsided classes. Tokens
are estimated (about 4 characters a token, 3 per message): no tokenizer ships offline, and
an estimate is what a budget needs. Images (vision fine-tuning) are checked against
OpenAI's documented limits: formats, sizes, colour modes, images per example.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from .. import images
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
# Images in training examples, as OpenAI's vision fine-tuning guide states them ("Image
# data requirements", https://developers.openai.com/api/docs/guides/vision-fine-tuning):
# at most 50,000 examples with images in a file, at most 10 images an example, each at most
# 10 MB, JPEG, PNG or WEBP, in RGB or RGBA mode, and none in an assistant message. OpenAI's
# moderation then skips images that show people, faces, children or CAPTCHAs (a warning:
# nothing here can see that).
VISION_TYPES = ("image/jpeg", "image/png", "image/webp")
VISION_MODES = ("RGB", "RGBA")
MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_EXAMPLES = 50_000
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
            content = last.get("content") if last.get("role") == "assistant" else None
            answer = content if isinstance(content, str) else None  # parts are no label
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


def example_messages(example: Any) -> list[Any]:
    """Every message of a training example, whatever the method's shape."""
    if not isinstance(example, dict):
        return []
    found: list[Any] = []
    source = example.get("input")
    for value in (
        example.get("messages"),
        source.get("messages") if isinstance(source, dict) else None,
        example.get("preferred_output"),
        example.get("non_preferred_output"),
    ):
        if isinstance(value, list):
            found += value
    return found


def _image_issues(example: Any, line: int) -> tuple[list[Issue], int]:
    """The example's images against the vision fine-tuning rules (above), and how many it
    has. A referenced file (``images.py``) or a data URL is read and checked; an https URL
    is OpenAI's to fetch, and nothing is fetched here."""
    found = images.image_urls(example_messages(example))
    issues = []
    if len(found) > MAX_IMAGES_PER_EXAMPLE:
        issues.append(
            _error(
                "too_many_images",
                f"{len(found)} images; an example may have at most {MAX_IMAGES_PER_EXAMPLE}",
                line=line,
            )
        )
    for number, (role, url) in enumerate(found, 1):
        at = f"image {number}"
        if role == "assistant":
            issues.append(
                _error(
                    "image_in_assistant_message",
                    f"{at} is in an assistant message: images may only be inputs",
                    line=line,
                )
            )
        try:
            data = images.url_bytes(url)
        except images.ImageError as exc:
            issues.append(_error("image_unreadable", f"{at}: {exc}", line=line))
            continue
        if data is not None:  # an https image: OpenAI's to fetch and check
            issues += _image_data_issues(data, at, line)
    return issues, len(found)


def _image_data_issues(data: bytes, at: str, line: int) -> list[Issue]:
    issues = []
    if len(data) > MAX_IMAGE_BYTES:
        size = f"{len(data) / 1024 / 1024:.1f} MB"
        issues.append(_error("image_too_large", f"{at} is {size}; at most 10 MB", line=line))
    media = images.sniff(data)
    if media not in VISION_TYPES:
        issues.append(
            _error(
                "image_format",
                f"{at} is {media or 'not a known image type'}; fine-tuning takes JPEG, PNG or WEBP",
                line=line,
            )
        )
    found = images.mode(data)
    if media in VISION_TYPES and found not in VISION_MODES:
        issues.append(
            _error(
                "image_mode",
                f"{at} is in {found or 'an unknown'} mode; fine-tuning takes RGB or RGBA "
                "images: convert it",
                line=line,
            )
        )
    return issues


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
    with_images = 0
    for line, example in enumerate(examples, start=1):
        found, count, answer = _example_issues(method, example, line)
        issues += found
        image_problems, image_count = _image_issues(example, line)
        issues += image_problems
        with_images += image_count > 0
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
    if with_images > MAX_IMAGE_EXAMPLES:
        issues.append(
            _error(
                "too_many_image_examples",
                f"{with_images:,} examples have images; a file may have at most "
                f"{MAX_IMAGE_EXAMPLES:,}: split the set",
            )
        )
    if with_images:
        issues.append(
            _warning(
                "images_moderated",
                f"{with_images} example(s) have images: OpenAI leaves out of training any "
                "image that shows people, faces, children or CAPTCHAs (not checked here)",
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
