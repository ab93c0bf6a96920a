"""How a failed model call is classified, and how long to wait before trying again.

One vocabulary for every caller (the client's retry loop, the helper process that sends
declared requests, the Batch API and fine-tuning code): a :class:`Failure` says what kind
of error it was, whether retrying can help and what the server asked us to wait. The SDK's
exception classes are read only when an exception is classified, so importing this module
does not import ``openai`` (it costs ~0.9 s).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

MAX_RETRY_AFTER = 120.0
_jitter = random.Random(0x5EED)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


@dataclass(frozen=True)
class Failure:
    kind: str
    message: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


def classify(exc: BaseException) -> Failure:
    """Map an SDK or parsing exception to an error kind and whether retrying can help."""
    if isinstance(exc, SenderFailure):  # classified by the sender process already
        return exc.failure
    if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
        return Failure("malformed", f"unreadable response: {exc}", None, True)
    import openai  # openai: only once a failure is classified

    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", "the request timed out", None, True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection", f"cannot connect: {exc}", None, True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        headers = dict(exc.response.headers) if exc.response is not None else None
        if status == 429:
            return Failure("rate_limit", message, status, True, retry_after(headers))
        if status >= 500 or status in (408, 409):
            return Failure("server", message, status, True, retry_after(headers))
        if status in (401, 403):
            hint = " (check OPENAI_API_KEY)" if status == 401 else ""
            return Failure("auth", message + hint, status, False)
        if status == 404:
            return Failure("not_found", message, status, False)
        return Failure("bad_request", message, status, False)
    return Failure("client", f"{type(exc).__name__}: {exc}", None, False)


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return f"HTTP {exc.status_code}: {inner['message']}"
    return f"HTTP {exc.status_code}: {getattr(exc, 'message', exc)}"


def backoff(attempt: int, retry_after: float | None) -> float:
    """Honour the server's Retry-After; otherwise exponential with jitter, capped."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    delay: float = min(8.0, 0.25 * 2.0**attempt)
    return delay * (0.5 + _jitter.random() / 2)


class SenderFailure(Exception):
    """One failed attempt, already classified by the helper process (or: it died)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
