"""Untrusted text: values from datasets and output from models are data, never templates,
code or terminal control.

- :class:`DataText` marks a string that came from a dataset. It is a ``str`` in every way
  that matters to a test, but a grader given one (``string_check(reference=case["a"])``)
  compares it literally: it is never rendered as a template, so a row whose expected answer
  is ``{{ sample.output_text }}`` is compared with that text, not with the output. A
  string *derived* from data in code (an f-string, ``+``) is a plain string again: write
  templates as templates (``"{{ item.a }}!"``), not by pasting data into them.
- :func:`for_terminal` and :func:`one_line` neutralise control characters and escape
  sequences (CSI, OSC — hyperlinks, clipboard writes — bare carriage returns, C1 controls,
  bidirectional overrides) before untrusted text reaches a terminal or a CI log, by
  showing them as visible escapes (``\\x1b``).

A leaf: every stage may import it.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode format characters
# that reorder or hide text (bidi overrides and isolates, zero-width joiners are harmless)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_CONTROL_AND_NEWLINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u2028\u2029]"
)


class DataText(str):
    """A string read from a dataset: compared literally, never rendered as a template."""

    __slots__ = ()


def as_data(value: Any) -> Any:
    """A dataset value with every string in it (nested in lists and dicts too) marked."""
    if isinstance(value, str):
        return value if isinstance(value, DataText) else DataText(value)
    if isinstance(value, dict):
        return {key: as_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_data(item) for item in value]
    return value


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n":
        return "\\n"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Untrusted text made safe to print: control characters and escape sequences become
    visible escapes; newlines and tabs stay."""
    return _CONTROL.sub(_escape, text)


def one_line(text: str, limit: int | None = None) -> str:
    """Untrusted text as one safe line (newlines shown as ``\\n``), cut to ``limit``."""
    flat = _CONTROL_AND_NEWLINES.sub(_escape, text)
    if limit is not None and len(flat) > limit:
        return flat[: max(0, limit - 1)] + "…"
    return flat
