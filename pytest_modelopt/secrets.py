"""What must never be written: redaction of API keys, bearer headers and tokens.

A leaf that every stage may import: records, reports, the GitHub steps and the fine-tuning
backends all pass text that may carry a secret through :func:`redact` before it reaches a
file, a log or a comment.
"""

from __future__ import annotations

import re

# API keys, bearer headers and GitHub tokens (classic and fine-grained)
SECRET_PATTERN = re.compile(
    r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+"
    r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,})"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Strip API keys and bearer tokens from text that may end up in a record or a log."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return SECRET_PATTERN.sub("***", text)


def redact_token(text: str, token: str | None) -> str:
    """The token (and anything shaped like a GitHub token or an API key) replaced by ***."""
    return redact(text, (token,) if token else ())
