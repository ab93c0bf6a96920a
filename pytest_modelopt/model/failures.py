"""How a failed model call is classified, and how long to wait before trying again.

One vocabulary for every caller (the client's retry loop, the helper process that sends
declared requests, the Batch API and fine-tuning code): a :class:`Failure` says what kind
of error it was, whether retrying can help and what the server asked us to wait. The SDK's
exception classes are read only when an exception is classified, so importing this module
does not import ``openai`` (it costs ~0.9 s).
"""

from __future__ import annotations

import errno
import random
import socket
import ssl
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
    if isinstance(exc, NotSent):
        return Failure("client", f"the request could not be sent: {exc}", None, False)
    if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
        return Failure("malformed", f"unreadable response: {exc}", None, True)
    import openai  # openai: only once a failure is classified

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one too
        return _connection_failure(exc, timed_out=isinstance(exc, openai.APITimeoutError))
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


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything that caused it (``__cause__``, ``__context__`` and the
    ``os_error`` aiohttp keeps), without loops."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        found = stack.pop()
        if any(found is other for other in seen):
            continue
        seen.append(found)
        for linked in (found.__cause__, found.__context__, getattr(found, "os_error", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)
    return seen


def _connection_failure(exc: BaseException, *, timed_out: bool) -> Failure:
    """Which way the connection failed, told truthfully, with the advice that fits it:
    refused (nothing listens), a name that does not resolve, TLS, a timeout, or otherwise.
    The causes are read first: the SDK's aiohttp transport reports a refused connection as
    a timeout."""
    causes = _causes(exc)
    detail = next((str(c) for c in reversed(causes) if str(c)), str(exc))
    if any(isinstance(c, socket.gaierror) for c in causes) or any(
        type(c).__name__ == "ClientConnectorDNSError" for c in causes
    ):
        return Failure(
            "dns",
            f"the server's host name does not resolve ({detail}): check the base URL "
            "(--eval-base-url or OPENAI_BASE_URL) and your network",
            None,
            False,
        )
    if any(
        isinstance(c, ConnectionRefusedError)
        or (isinstance(c, OSError) and c.errno == errno.ECONNREFUSED)
        for c in causes
    ):
        return Failure(
            "connection_refused",
            f"the connection was refused ({detail}): nothing listens at the base URL; is the "
            "server running (modelopt serve-local) and is its port right?",
            None,
            True,
        )
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return Failure(
            "tls",
            f"the TLS handshake failed ({detail}): check the URL's scheme (http or https) "
            "and the server's certificate",
            None,
            False,
        )
    if timed_out:
        return Failure("timeout", "the request timed out", None, True)
    return Failure("connection", f"cannot connect: {detail}", None, True)


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


class NotSent(Exception):
    """The HTTP client refused to send a request (a client-side error before any byte left:
    e.g. credentials in a URL that the transport will not use): not a server's answer."""


def not_sent(exc: Exception) -> Exception:
    """What the HTTP client raised while sending: its own errors as they are, a plain Python
    error (which would otherwise read as an unreadable response) as :class:`NotSent`."""
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        return NotSent(f"{type(exc).__name__}: {exc}")
    return exc


class SenderFailure(Exception):
    """One failed attempt, already classified by the helper process (or: it died)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
