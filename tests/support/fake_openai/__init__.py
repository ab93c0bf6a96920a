"""A deterministic, local, OpenAI-compatible HTTP server for the test suite.

No test may reach the internet, and openai 3.x talks HTTP through httpx2, which RESPX
cannot intercept. So the tests point the real ``openai`` SDK at this server via
``base_url`` and exercise the real wire format: status codes, headers, JSON bodies.

The server runs its own asyncio loop in a daemon thread, so synchronous tests can drive
it directly and subprocesses (pytest-xdist workers, benchmarks) reach it over HTTP. Run
it standalone with::

    python -m tests.support.fake_openai --port 0 --latency 0.1   # from the repository root

which prints ``BASE_URL=http://127.0.0.1:PORT/v1`` and serves until SIGTERM/SIGINT.

One module per API family, because that is how the fake grows: a new OpenAI API (or a
new quirk of one) is one family's business, and its state machine reads best alone.
``server`` is the one ``FakeOpenAI``: the wire (recording, API key, faults, capacity,
latency) and routing, no API's logic. ``inference`` answers chat completions, responses
and embeddings; ``files``, ``batches``, ``fine_tuning`` and ``stored`` keep what their API
creates. ``training_files`` is split from ``fine_tuning``: it is an independent oracle
of the plugin's own training-file validation, and must stay one. ``common`` is what they
all speak (error shape, ids, cursor pages) so that no family imports another, except
through the server: a batch answers its lines with the function inference hands it, a
stored completion arrives through a callback, and files take an upload check from each
family that reads them.
"""

from __future__ import annotations

import contextlib

from .common import CREATED, count_tokens
from .fine_tuning import NO_FINE_TUNING_ACCESS
from .inference import (
    DEFAULT_MODELS,
    EMBEDDING_DIMENSIONS,
    ReplyText,
    fake_embedding,
)
from .server import FakeOpenAI, FaultKind, RecordedRequest
from .stored import StoredAction

# httpx2 imports httpcore2 lazily and caches its exception classes on first use. If that
# first use is inside a pytester in-process run, pytester then drops httpcore2 from
# sys.modules; the next client re-imports it, the cache holds stale classes, and a read
# timeout escapes as a raw httpcore2.ReadTimeout instead of openai.APITimeoutError.
# The test suite imports this package early, so importing httpcore2 here prevents that.
with contextlib.suppress(ImportError):
    import httpcore2  # noqa: F401

__all__ = [
    "CREATED",
    "DEFAULT_MODELS",
    "EMBEDDING_DIMENSIONS",
    "NO_FINE_TUNING_ACCESS",
    "FakeOpenAI",
    "FaultKind",
    "RecordedRequest",
    "ReplyText",
    "StoredAction",
    "count_tokens",
    "fake_embedding",
]
