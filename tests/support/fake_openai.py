"""A deterministic, local, OpenAI-compatible HTTP server for the test suite.

No test may reach the internet, and openai 3.x talks HTTP through httpx2, which RESPX
cannot intercept. So the tests point the real ``openai`` SDK at this server via
``base_url`` and exercise the real wire format: status codes, headers, JSON bodies.

The server runs its own asyncio loop in a daemon thread, so synchronous tests can drive
it directly and subprocesses (pytest-xdist workers, benchmarks) reach it over HTTP.
It also serves the Files and Batch APIs (``/v1/files``, ``/v1/batches``) in memory, so
batch submission can be tested end to end; ``batches_enabled = False`` turns them off
(a compatible server without them). Fine-tuning jobs (``/v1/fine_tuning/jobs*``) run on a
deterministic per-poll state machine over those files; ``fine_tuning_access = False`` is an
organisation that may no longer create jobs. Chat completions sent with ``store: true`` are
kept and served by the stored-completions API (``GET /v1/chat/completions``, ``.../{id}``,
``.../{id}/messages``, update and delete); ``stored_completions_enabled = False`` turns it
off. Run it standalone with::

    python -m tests.support.fake_openai --port 0 --latency 0.1   # from the repository root

which prints ``BASE_URL=http://127.0.0.1:PORT/v1`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import re
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

# httpx2 imports httpcore2 lazily and caches its exception classes on first use. If that
# first use is inside a pytester in-process run, pytester then drops httpcore2 from
# sys.modules; the next client re-imports it, the cache holds stale classes, and a read
# timeout escapes as a raw httpcore2.ReadTimeout instead of openai.APITimeoutError.
# The test suite imports this module early, so importing httpcore2 here prevents that.
with contextlib.suppress(ImportError):
    import httpcore2  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import FrameType

__all__ = [
    "CREATED",
    "DEFAULT_MODELS",
    "FakeOpenAI",
    "FaultKind",
    "RecordedRequest",
    "ReplyText",
    "StoredAction",
    "count_tokens",
    "fake_embedding",
]

FaultKind: TypeAlias = Literal["429", "500", "503", "timeout", "malformed", "404", "401"]
#: The stored-completions requests a ``stored_completions_fault`` can aim at.
StoredAction: TypeAlias = Literal["list", "retrieve", "messages", "update", "delete"]
#: A reply: fixed text, or a function of the request body (called on the server thread).
ReplyText: TypeAlias = str | Callable[[dict[str, Any]], str]

#: Fixed ``created`` / ``created_at`` timestamp: replies must not depend on the clock.
CREATED: Final = 1_700_000_000
#: What ``GET /v1/models`` lists while ``known_models`` is None (every model exists).
DEFAULT_MODELS: Final = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
)
EMBEDDING_DIMENSIONS: Final = 64
_FAULT_KINDS: Final = frozenset(get_args(FaultKind))
_MODEL_ENDPOINTS: Final = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
_WORD: Final = re.compile(r"\w+")
#: What ``POST /v1/files`` accepts as ``purpose`` (spec ``CreateFileRequest``).
_FILE_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: Statuses after which a batch never changes again.
_BATCH_TERMINAL: Final = frozenset({"completed", "failed", "expired", "cancelled"})
#: A batch expires this long after it was created (``completion_window`` "24h").
_BATCH_WINDOW_S: Final = 24 * 3600
#: Fine-tuning job statuses after which a job never changes.
_FT_TERMINAL: Final = frozenset({"succeeded", "failed", "cancelled"})
#: ``method.type`` values (spec ``FineTuneMethod``).
_FT_METHODS: Final = ("supervised", "dpo", "reinforcement")
#: Grader types a reinforcement job takes (spec ``FineTuneReinforcementMethod.grader``).
_RFT_GRADERS: Final = frozenset(
    {"string_check", "text_similarity", "python", "score_model", "multi"}
)
#: "Your file must have at least 10 lines" (SFT guide); the same for DPO and RFT.
_FT_MIN_EXAMPLES: Final = 10
_SFT_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_SFT_MESSAGE_KEYS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight", "refusal"}
)
#: RFT prompts: the guide names developer/user/assistant/tool; system is what a chat
#: template renders, and reasoning models read it as developer.
_RFT_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})
#: What "auto" hyperparameters resolve to once a job's files are validated.
_FT_AUTO: Final = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}
#: The 403 an organisation without fine-tuning gets. OpenAI publishes no exact wording for
#: the 2026 wind-down; this follows its error shape and says what its notice says.
NO_FINE_TUNING_ACCESS: Final = (
    "Your organization does not have access to fine-tuning. Self-serve fine-tuning is being "
    "wound down: organizations that have not fine-tuned before can no longer create "
    "fine-tuning jobs."
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert on what the client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    #: The raw query string (``limit=2&metadata%5Bk%5D=v``), "" when there is none.
    query: str = ""


@dataclass
class _Rule:
    """A canned answer; ``text`` or ``tool`` (name, arguments) is set, never both."""

    model: str | None
    contains: str | None
    text: ReplyText | None = None
    tool: tuple[str, dict[str, Any]] | None = None

    def matches(self, model: str, user_text: str) -> bool:
        return (self.model is None or self.model == model) and (
            self.contains is None or self.contains in user_text
        )


@dataclass
class _Fault(_Rule):
    """An injected failure; ``remaining`` None means it never runs out."""

    kind: FaultKind = "500"
    remaining: int | None = 1
    retry_after: float | None = None
    delay: float | None = None


@dataclass(frozen=True)
class _Reply:
    """What the model "says": plain text, or one function tool call."""

    text: str | None
    tool_name: str | None = None
    tool_arguments: str | None = None


class _ReplyError(Exception):
    """A reply callable failed: surface it as a 500 the test can read."""


@dataclass
class _File:
    """An uploaded (or batch-generated) file, kept in memory."""

    id: str
    filename: str
    purpose: str
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": CREATED,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    """One batch and where it is in validating -> in_progress -> finalizing -> completed."""

    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    lines: list[dict[str, Any]]
    model: str | None
    #: Problems found at creation (a line's url or model): the batch fails when it starts.
    problems: list[dict[str, Any]]
    status: str = "validating"
    polls: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    usage: dict[str, Any] | None = None
    times: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``Batch`` object; unset optional fields are left out (the spec has no nulls)."""
        data: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "created_at": CREATED,
            "expires_at": CREATED + _BATCH_WINDOW_S,
            "request_counts": {
                "total": len(self.lines),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }
        if self.model is not None:
            data["model"] = self.model
        if self.problems:
            data["errors"] = {"object": "list", "data": self.problems}
        for name in ("output_file_id", "error_file_id", "usage"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        data.update(self.times)
        return data

    def stamp(self, status: str) -> None:
        """Move to ``status``, with its ``<status>_at`` time (deterministic, never the clock)."""
        self.status = status
        self.times[f"{status}_at"] = CREATED + 1 + len(self.times)


@dataclass
class _FineTuneJob:
    """One fine-tuning job: validating_files -> queued -> running -> succeeded (or failed)."""

    id: str
    model: str
    training_file: str
    validation_file: str | None
    method: dict[str, Any]  # {"type": ..., "<type>": {"hyperparameters": {...}, ...}}
    metadata: dict[str, str] | None
    suffix: str | None
    seed: int
    #: (error code, message, param) found in the files at creation: the job fails on them.
    problem: tuple[str, str, str] | None
    #: Tokens in the training file (whitespace words), for ``trained_tokens``.
    tokens: int
    total_steps: int = 3
    status: str = "validating_files"
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None

    @property
    def kind(self) -> str:
        return str(self.method["type"])

    @property
    def hyperparameters(self) -> dict[str, Any]:
        settings = self.method.setdefault(self.kind, {})
        hyperparameters: dict[str, Any] = settings.setdefault("hyperparameters", {})
        return hyperparameters

    @property
    def model_name(self) -> str:
        """``ft:<base>:<org>:<suffix>:<id8>``, the name OpenAI gives the trained model."""
        return f"ft:{self.model}:modelopt:{self.suffix or ''}:{_digest('ft', self.id)[:8]}"

    def clock(self) -> int:
        """The next deterministic timestamp: one second per event."""
        return CREATED + len(self.events)

    def event(
        self, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        self.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{_digest(self.id, len(self.events))[:20]}",
                "created_at": self.clock(),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data and "step" in data else "message",
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The ``FineTuningJob`` object (every field the spec requires, nulls included)."""
        hyper = self.hyperparameters
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": CREATED,
            "finished_at": self.finished_at,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": "org-modelopt",
            "result_files": [],
            "status": self.status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": {
                name: hyper.get(name, "auto")
                for name in ("batch_size", "learning_rate_multiplier", "n_epochs")
            },
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "integrations": [],
            "seed": self.seed,
            "estimated_finish": None,
            "method": self.method,
            "metadata": self.metadata,
            **({"user_provided_suffix": self.suffix} if self.suffix else {}),
        }


@dataclass
class _StoredCompletion:
    """A chat completion created with ``store: true``: the answer, its metadata and the
    request's messages (as ``ChatCompletionStoreMessage`` objects, oldest first)."""

    payload: dict[str, Any]
    metadata: dict[str, str]
    messages: list[dict[str, Any]]
    #: The model the request named (``payload["model"]`` is the one that answered).
    requested_model: str = ""

    @property
    def id(self) -> str:
        return str(self.payload["id"])

    def to_json(self) -> dict[str, Any]:
        """The ``CreateChatCompletionResponse`` with its current ``metadata``."""
        return {**self.payload, "metadata": dict(self.metadata)}


def _store_messages(completion_id: str, messages: list[Any]) -> list[dict[str, Any]]:
    """A request's messages as OpenAI lists them: ``<completion id>-<n>`` ids, text
    ``content``, and the ``content_parts`` array when the content was one."""
    out: list[dict[str, Any]] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = None
        if isinstance(content, list):
            parts = [
                part
                for part in content
                if isinstance(part, dict) and part.get("type") in ("text", "image_url")
            ]
        out.append(
            {
                "id": f"{completion_id}-{number}",
                "role": message.get("role"),
                "content": _content_text(content) if content is not None else None,
                "refusal": None,
                "name": message.get("name"),
                "content_parts": parts or None,
            }
        )
    return out


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def fake_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Unit vector from a signed hashed bag of lower-cased words.

    Texts sharing words get a high cosine similarity, identical texts exactly the same
    vector, unrelated texts roughly orthogonal ones; no model and no randomness needed.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # no words: any fixed unit vector keeps cosine well-defined
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def _error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Errors in OpenAI's shape, which the SDK turns into its typed exceptions."""
    return web.json_response(
        _error_body(message, type_, code, param), status=status, headers=headers
    )


def _model_not_found(model: str) -> web.Response:
    return _error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def _invalid_key(headers: Mapping[str, str]) -> web.Response:
    auth = headers.get("Authorization", "")
    key = auth[7:] if auth.lower().startswith("bearer ") else ""
    if not key.strip():
        return _error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    return _error(
        401,
        f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
        "invalid_request_error",
        "invalid_api_key",
    )


def _has_bearer(headers: Mapping[str, str]) -> bool:
    auth = headers.get("Authorization", "")
    return auth.lower().startswith("bearer ") and bool(auth[7:].strip())


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list, joined by \\n."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def _chat_texts(body: dict[str, Any]) -> tuple[str, list[str]]:
    """(last user message text, every message's text) of a chat request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    texts = [_content_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    return (users[-1] if users else ""), texts


def _responses_texts(body: dict[str, Any]) -> tuple[str, list[str]]:
    """(string input or last user item's text, every input text incl. instructions)."""
    texts: list[str] = []
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
    input_ = body.get("input")
    if isinstance(input_, str):
        return input_, [*texts, input_]
    user_text = ""
    for item in input_ if isinstance(input_, list) else []:
        if not isinstance(item, dict) or "role" not in item:
            continue
        text = _content_text(item.get("content"))
        texts.append(text)
        if item["role"] == "user":
            user_text = text
    return user_text, texts


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The ``input`` of an embeddings request as strings (token arrays become digits)."""
    input_ = body.get("input")
    if isinstance(input_, str):
        return [input_]
    if isinstance(input_, list) and input_ and all(isinstance(t, int) for t in input_):
        return [" ".join(map(str, input_))]
    if isinstance(input_, list):
        return [
            item if isinstance(item, str) else " ".join(map(str, item))
            for item in input_
            if isinstance(item, (str, list))
        ]
    return []


def _digest(path: str, body: Any) -> str:
    """Content hash for ids: identical requests get identical ids, nothing is random."""
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class FakeOpenAI(ThreadedServer):
    """An OpenAI-compatible aiohttp server on 127.0.0.1 with scripted, deterministic replies.

    Use ``reply``/``reply_tool_call`` to script answers and ``fault`` to inject failures;
    everything else echoes the last user message. ``reset()`` restores a clean slate
    (including ``latency``, ``known_models`` and ``require_key`` as given here, and the
    batch settings below), so one server can be shared across tests.

    Batches: ``POST /v1/files`` (purpose ``batch`` files are validated line by line: a
    bad line is a 400 naming it), ``POST /v1/batches``, then each ``GET /v1/batches/{id}``
    moves the batch one step, validating -> in_progress -> finalizing -> completed, in
    ``batch_steps`` retrievals. On completion every line is answered by the same code as
    the live endpoint (rules, reply callables, ``known_models``, ``response_formats``
    apply; ``fault``s and ``latency`` do not: they model the transport of live calls) and
    the output/error files are written. A line whose url differs from the batch's
    endpoint, or whose model differs from line 1's, makes the batch ``failed``.

    Fine-tuning: a ``purpose="fine-tune"`` upload must be ``.jsonl``; ``POST
    /v1/fine_tuning/jobs`` checks the files against the format of the job's method (SFT
    ``messages`` with an assistant turn, DPO ``input`` / ``preferred_output`` /
    ``non_preferred_output``, RFT ``messages`` ending in a user turn; at least 10
    examples). Each ``GET /v1/fine_tuning/jobs/{id}`` moves the job one step:
    validating_files -> queued (or ``failed`` with ``error.code`` ``invalid_training_file``
    when the file does not conform) -> running, then ``fine_tuning_steps`` retrievals each
    add a metrics event (falling ``train_loss``) and a checkpoint, and the last one makes it
    ``succeeded`` with ``fine_tuned_model`` ``ft:<base>:modelopt:<suffix>:<id8>``. Events,
    checkpoints and the job list are newest first with ``after`` / ``limit`` cursors; the
    list filters on ``metadata[k]=v``. Cancel, pause and resume work from the states OpenAI
    allows them in.
    """

    def __init__(
        self,
        latency: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        known_models: Iterable[str] | None = None,
        require_key: bool = False,
    ) -> None:
        self._initial = (latency, None if known_models is None else set(known_models), require_key)
        #: Seconds added (via ``asyncio.sleep``) to every chat/responses/embeddings request.
        self.latency: float = latency
        #: Models that exist; None means every model exists.
        self.known_models: set[str] | None = None if known_models is None else set(known_models)
        #: The response_format types accepted (None: all). {"json_object"} acts like
        #: llama.cpp's server, which also answers with ``response_format_status`` 500.
        self.response_formats: set[str] | None = None
        self.response_format_status = 400
        #: When True, a request without ``Authorization: Bearer <key>`` gets a 401.
        self.require_key: bool = require_key
        #: When False the Files and Batch APIs answer 404, like a server without them.
        self.batches_enabled: bool = True
        #: Retrievals (``GET /v1/batches/{id}``) a batch takes to complete; 0: done at once.
        self.batch_steps: int = 3
        #: The next N batch retrievals answer 500: an outage while a client polls.
        self.batch_retrieve_errors: int = 0
        #: When False the fine-tuning API answers 404, like a server without it.
        self.fine_tuning_enabled: bool = True
        #: When False, creating a fine-tuning job is a 403: an organisation without access.
        self.fine_tuning_access: bool = True
        #: Retrievals a job spends ``running`` (one metrics event and checkpoint each).
        self.fine_tuning_steps: int = 3
        #: The next N job creations create the job, then answer 500: a reply lost on the way.
        self.fine_tuning_lost_replies: int = 0
        #: When False the stored-completions API answers 404 (``store`` is then ignored),
        #: like vLLM, Ollama and most compatible servers.
        self.stored_completions_enabled: bool = True
        #: The model a chat reply names for the one asked, as OpenAI answers ``gpt-4o``
        #: with ``gpt-4o-2024-08-06``; unlisted models answer as themselves.
        self.chat_snapshots: dict[str, str] = {}
        #: Most model requests served at once (None: no limit); one more is answered 429
        #: at once, as a gateway with a concurrency quota does, with ``Retry-After:
        #: capacity_retry_after`` seconds when that is set.
        self.capacity: int | None = None
        self.capacity_retry_after: float | None = None
        #: Model requests answered 429 because of ``capacity``.
        self.capacity_rejections: int = 0
        self._stored: dict[str, _StoredCompletion] = {}  # insertion order: oldest first
        self._stored_faults: list[tuple[str | None, int, str, str | None]] = []
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._ft_jobs: dict[str, _FineTuneJob] = {}
        self._ft_faults: list[tuple[int, str, str | None]] = []
        self._serial = 0
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._faults: list[_Fault] = []
        self._in_flight = 0
        self._max_in_flight = 0

    # -- lifecycle: ThreadedServer; a client that gave up (a timeout fault) frees its
    # handler, and stop() does not wait for a 30 s timeout fault to finish.
    name = "fake-openai"
    max_body = 64 * 1024 * 1024
    runner_options = {"handler_cancellation": True}  # noqa: RUF012 - read only
    backlog = 1024

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's ``base_url``."""
        return f"http://{self._host}:{self._port}/v1"

    # -- scripting -----------------------------------------------------------------------

    def reply(
        self, text: ReplyText, *, model: str | None = None, contains: str | None = None
    ) -> None:
        """Answer matching requests with ``text`` (or ``text(request_body)``); newest rule wins."""
        with self._lock:
            self._rules.append(_Rule(model, contains, text=text))

    def reply_tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        model: str | None = None,
        contains: str | None = None,
    ) -> None:
        """Answer matching requests with one function tool call ``name(**arguments)``."""
        with self._lock:
            self._rules.append(_Rule(model, contains, tool=(name, dict(arguments))))

    def fault(
        self,
        kind: FaultKind,
        *,
        times: int | None = 1,
        model: str | None = None,
        contains: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> None:
        """Make the next ``times`` matching model requests fail (None: all of them).

        Faults apply to chat, responses and embeddings requests (not to ``/v1/models``,
        so a client's pre-flight model check does not eat a fault meant for a call).
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for forever")
        with self._lock:
            self._faults.append(
                _Fault(
                    model,
                    contains,
                    kind=kind,
                    remaining=times,
                    retry_after=retry_after,
                    delay=delay,
                )
            )

    def reset(self) -> None:
        """Forget rules, faults, recorded requests and counters; restore initial settings."""
        with self._lock:
            self._rules.clear()
            self._faults.clear()
            self._requests.clear()
            self._max_in_flight = self._in_flight
            latency, known, require_key = self._initial
            self.latency = latency
            self.known_models = None if known is None else set(known)
            self.response_formats = None
            self.response_format_status = 400
            self.require_key = require_key
            self.batches_enabled = True
            self.batch_steps = 3
            self.batch_retrieve_errors = 0
            self.fine_tuning_enabled = True
            self.fine_tuning_access = True
            self.fine_tuning_steps = 3
            self.fine_tuning_lost_replies = 0
            self.stored_completions_enabled = True
            self.chat_snapshots = {}
            self.capacity = None
            self.capacity_retry_after = None
            self.capacity_rejections = 0
            self._stored.clear()
            self._stored_faults.clear()
            self._files.clear()
            self._batches.clear()
            self._ft_jobs.clear()
            self._ft_faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        """Most model requests ever served at once: proves a client really ran concurrently."""
        with self._lock:
            return self._max_in_flight

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw=raw,
            query=request.query_string,
        )
        with self._lock:
            self._requests.append(record)

        if self.require_key and not _has_bearer(request.headers):
            return _invalid_key(request.headers)
        if self.fine_tuning_enabled and request.path.startswith("/v1/fine_tuning/jobs"):
            tuning = self._serve_fine_tuning(request, raw, body)
            if tuning is not None:
                return tuning
        if self.batches_enabled:
            platform = await self._serve_platform(request, raw, body)
            if platform is not None:
                return platform
        if self.stored_completions_enabled and (
            request.path == "/v1/chat/completions"
            or request.path.startswith("/v1/chat/completions/")
        ):
            stored = self._serve_stored(request, raw, body)
            if stored is not None:
                return stored
        endpoint = _MODEL_ENDPOINTS.get(request.path)
        if request.method == "POST" and endpoint is not None:
            if raw and body is None:
                return _error(
                    400,
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error",
                )
            return await self._serve_model(endpoint, request.path, body)
        if request.method == "GET" and request.path == "/v1/models":
            return web.json_response(self._list_models())
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            model = request.path.removeprefix("/v1/models/")
            known = self.known_models
            if known is not None and model not in known:
                return _model_not_found(model)
            return web.json_response(_model_object(model))
        return _error(
            404,
            f"Invalid URL ({request.method} {request.path})",
            "invalid_request_error",
        )

    def _list_models(self) -> dict[str, Any]:
        known = self.known_models
        ids = sorted(known) if known is not None else list(DEFAULT_MODELS)
        return {"object": "list", "data": [_model_object(m) for m in ids]}

    # -- Files and Batch APIs ------------------------------------------------------------

    async def _serve_platform(
        self, request: web.Request, raw: bytes, body: Any
    ) -> web.Response | None:
        """``/v1/files*`` and ``/v1/batches*``; None for any other path."""
        parts = request.path.split("/")[2:]
        if not parts or parts[0] not in ("files", "batches") or "" in parts or len(parts) > 3:
            return None
        method, kind, rest = request.method, parts[0], parts[1:]
        if kind == "files":
            if method == "POST" and not rest:
                return self._upload_file(request, raw)
            if method == "GET" and not rest:
                return self._list_files(request.query.get("purpose"))
            if len(rest) == 1 and method in ("GET", "DELETE"):
                return self._file_object(rest[0], delete=method == "DELETE")
            if method == "GET" and len(rest) == 2 and rest[1] == "content":
                return self._file_content(rest[0])
            return None
        if method == "POST" and not rest:
            if raw and body is None:
                return _error(
                    400,
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error",
                )
            return await self._create_batch(body)
        if method == "GET" and not rest:
            return self._list_batches(request.query.get("limit"), request.query.get("after"))
        if method == "GET" and len(rest) == 1:
            return await self._retrieve_batch(rest[0])
        if method == "POST" and len(rest) == 2 and rest[1] == "cancel":
            return self._cancel_batch(rest[0])
        return None

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._serial += 1
            return f"{prefix}{self._serial:06d}"

    def _add_file(self, filename: str, purpose: str, data: bytes) -> _File:
        file = _File(self._new_id("file-fake"), filename, purpose, data)
        with self._lock:
            self._files[file.id] = file
        return file

    def _upload_file(self, request: web.Request, raw: bytes) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return _error(
                400, "Files must be uploaded as multipart/form-data.", "invalid_request_error"
            )
        fields = _multipart_fields(content_type, raw)
        filename, data = fields.get("file", (None, b""))
        if filename is None:
            return _error(
                400,
                "Missing required parameter: 'file'.",
                "invalid_request_error",
                "missing_required_parameter",
                "file",
            )
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose not in _FILE_PURPOSES:
            return _error(
                400,
                f"Invalid value for 'purpose': {purpose!r}. "
                f"Expected one of {list(_FILE_PURPOSES)}.",
                "invalid_request_error",
                "invalid_value",
                "purpose",
            )
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            return _error(
                400,
                "Invalid file format for Fine-Tuning API. Must be .jsonl",
                "invalid_request_error",
                "invalid_file_format",
                "file",
            )
        if purpose == "batch":
            problem = _batch_file_problem(data)
            if problem is not None:
                return _error(
                    400,
                    f"Invalid batch input file {filename!r}: {problem}.",
                    "invalid_request_error",
                    "invalid_batch_file",
                    "file",
                )
        return web.json_response(self._add_file(filename, purpose, data).to_json())

    def _list_files(self, purpose: str | None) -> web.Response:
        with self._lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        data = [f.to_json() for f in reversed(files)]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    def _get_file(self, file_id: str) -> _File | None:
        with self._lock:
            return self._files.get(file_id)

    def _file_object(self, file_id: str, *, delete: bool) -> web.Response:
        file = self._get_file(file_id)
        if file is None:
            return _no_such("File", file_id)
        if not delete:
            return web.json_response(file.to_json())
        with self._lock:
            self._files.pop(file_id, None)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    def _file_content(self, file_id: str) -> web.Response:
        file = self._get_file(file_id)
        if file is None:
            return _no_such("File", file_id)
        return web.Response(body=file.data, content_type="application/octet-stream")

    async def _create_batch(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str):
                return _error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    name,
                )
        endpoint = body["endpoint"]
        if endpoint not in _MODEL_ENDPOINTS:
            return _error(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}. FakeOpenAI batches support "
                f"{', '.join(_MODEL_ENDPOINTS)}.",
                "invalid_request_error",
                "invalid_value",
                "endpoint",
            )
        if body["completion_window"] != "24h":
            return _error(
                400,
                f"Invalid value for 'completion_window': {body['completion_window']!r}. "
                "Supported values are: '24h'.",
                "invalid_request_error",
                "invalid_value",
                "completion_window",
            )
        metadata = body.get("metadata")
        if _bad_metadata(metadata):
            return _invalid_metadata()
        file = self._get_file(body["input_file_id"])
        if file is None or file.purpose != "batch":
            why = "does not exist" if file is None else f"has purpose {file.purpose!r}"
            return _error(
                400,
                f"Invalid 'input_file_id': {body['input_file_id']!r} {why}; upload the "
                "requests with purpose 'batch'.",
                "invalid_request_error",
                "invalid_value",
                "input_file_id",
            )
        lines = [json.loads(line) for line in file.data.decode("utf-8").splitlines() if line]
        models = [line["body"].get("model") for line in lines]
        problems: list[dict[str, Any]] = []
        for number, (line, model) in enumerate(zip(lines, models, strict=True), 1):
            if line["url"] != endpoint:
                problems.append(
                    _batch_problem(
                        "invalid_url",
                        f"The URL {line['url']} does not match the batch endpoint {endpoint}.",
                        "url",
                        number,
                    )
                )
            elif model != models[0]:
                problems.append(
                    _batch_problem(
                        "model_mismatch",
                        f"All requests in a batch must use the same model: line {number} uses "
                        f"{model!r}, line 1 uses {models[0]!r}.",
                        "body.model",
                        number,
                    )
                )
        batch = _Batch(
            id=self._new_id("batch_fake"),
            endpoint=endpoint,
            input_file_id=file.id,
            metadata=None if metadata is None else dict(metadata),
            lines=lines,
            model=models[0] if isinstance(models[0], str) else None,
            problems=problems,
        )
        with self._lock:
            self._batches[batch.id] = batch
        if self.batch_steps <= 0:
            await self._finish_batch(batch)
        return web.json_response(batch.to_json())

    def _list_batches(self, limit: str | None, after: str | None) -> web.Response:
        with self._lock:
            batches = list(reversed(self._batches.values()))  # newest first, like OpenAI
        ids = [b.id for b in batches]
        if after in ids:
            batches = batches[ids.index(after) + 1 :]
        size = int(limit) if limit and limit.isdigit() and int(limit) > 0 else 20
        page = batches[:size]
        data: dict[str, Any] = {
            "object": "list",
            "data": [b.to_json() for b in page],
            "has_more": len(batches) > size,
        }
        if page:
            data["first_id"], data["last_id"] = page[0].id, page[-1].id
        return web.json_response(data)

    async def _retrieve_batch(self, batch_id: str) -> web.Response:
        with self._lock:
            batch = self._batches.get(batch_id)
            outage = self.batch_retrieve_errors > 0
            if outage:
                self.batch_retrieve_errors -= 1
        if outage:
            return _error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        if batch is None:
            return _no_such("Batch", batch_id)
        if batch.status not in _BATCH_TERMINAL:
            batch.polls += 1
            await self._step(batch)
        return web.json_response(batch.to_json())

    async def _step(self, batch: _Batch) -> None:
        """One retrieval's worth of progress."""
        if batch.status == "cancelling":
            batch.stamp("cancelled")
            return
        final = batch.polls >= self.batch_steps
        if batch.problems or final:
            await self._finish_batch(batch)
        elif batch.polls >= 2 and batch.polls == self.batch_steps - 1:
            batch.stamp("finalizing")
        elif batch.status == "validating":
            batch.stamp("in_progress")

    async def _finish_batch(self, batch: _Batch) -> None:
        """Fail it (problems found at creation) or answer every line and write the files."""
        if batch.problems:
            batch.stamp("failed")
            return
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        usage = {"input_tokens": 0, "output_tokens": 0}
        for line in batch.lines:
            path, body = line["url"], line["body"]
            response = await self._serve_model(_MODEL_ENDPOINTS[path], path, body, batch=True)
            payload = json.loads(response.text or "null")
            request_id = response.headers.get("x-request-id") or f"req_{_digest(path, body)}"
            item = {
                "id": f"batch_req_{_digest(batch.id, line['custom_id'])}",
                "custom_id": line["custom_id"],
                "response": {
                    "status_code": response.status,
                    "request_id": request_id,
                    "body": payload,
                },
                "error": None,
            }
            if response.status == 200:
                outputs.append(item)
                raw_usage = payload.get("usage") or {}
                usage["input_tokens"] += int(
                    raw_usage.get("input_tokens") or raw_usage.get("prompt_tokens") or 0
                )
                usage["output_tokens"] += int(
                    raw_usage.get("output_tokens") or raw_usage.get("completion_tokens") or 0
                )
            else:
                errors.append(item)
        # Output order is not input order on OpenAI either: clients must join on custom_id.
        if outputs:
            batch.output_file_id = self._add_file(
                f"{batch.id}_output.jsonl", "batch_output", _jsonl(outputs)
            ).id
        if errors:
            batch.error_file_id = self._add_file(
                f"{batch.id}_error.jsonl", "batch_output", _jsonl(errors)
            ).id
        batch.completed, batch.failed = len(outputs), len(errors)
        batch.usage = {
            "input_tokens": usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        }
        for status in ("in_progress", "finalizing", "completed"):
            if f"{status}_at" not in batch.times:
                batch.stamp(status)

    def _cancel_batch(self, batch_id: str) -> web.Response:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return _no_such("Batch", batch_id)
        if batch.status in _BATCH_TERMINAL:
            return _error(
                400,
                f"Cannot cancel a batch with status '{batch.status}'.",
                "invalid_request_error",
            )
        if batch.status != "cancelling":
            batch.stamp("cancelling")
        return web.json_response(batch.to_json())

    # -- Fine-tuning API ------------------------------------------------------------------

    @property
    def fine_tuning_jobs(self) -> list[dict[str, Any]]:
        """Every fine-tuning job as the API shows it, oldest first (without advancing it)."""
        with self._lock:
            jobs = list(self._ft_jobs.values())
        return [job.to_json() for job in jobs]

    def fine_tuning_fault(
        self, status: int, message: str, *, code: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` fine-tuning requests with this error, in OpenAI's shape:
        e.g. a 401 "Missing scopes" of a restricted key, or a 503 while a client polls."""
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._ft_faults.extend([(status, message, code)] * times)

    def _serve_fine_tuning(
        self, request: web.Request, raw: bytes, body: Any
    ) -> web.Response | None:
        """``/v1/fine_tuning/jobs*``; None for any other path (which then answers 404)."""
        parts = request.path.split("/")[3:]  # "", "v1", "fine_tuning", "jobs", ...
        if parts[:1] != ["jobs"] or "" in parts or len(parts) > 3:
            return None
        method, rest, query = request.method, parts[1:], request.query
        with self._lock:
            fault = self._ft_faults.pop(0) if self._ft_faults else None
        if fault is not None:
            status, message, code = fault
            kind = "server_error" if status >= 500 else "invalid_request_error"
            return _error(status, message, kind, code)
        if not rest:
            if method == "POST":
                if raw and body is None:
                    return _error(
                        400,
                        "We could not parse the JSON body of your request.",
                        "invalid_request_error",
                    )
                return self._create_ft_job(body)
            if method == "GET":
                return self._list_ft_jobs(query)
            return None
        action = rest[1] if len(rest) == 2 else None
        routes = {
            ("GET", None),
            ("POST", "cancel"),
            ("POST", "pause"),
            ("POST", "resume"),
            ("GET", "events"),
            ("GET", "checkpoints"),
        }
        if (method, action) not in routes:
            return None
        with self._lock:
            job = self._ft_jobs.get(rest[0])
        if job is None:
            return _error(
                404,
                f"Could not find fine-tuning job {rest[0]!r}.",
                "invalid_request_error",
                "fine_tuning_job_not_found",
                "fine_tuning_job_id",
            )
        if action is None:
            with self._lock:
                self._advance_ft_job(job)
                return web.json_response(job.to_json())
        if action == "events":
            return web.json_response(
                _cursor_page(job.events[::-1], query.get("after"), query.get("limit"), 20)
            )
        if action == "checkpoints":
            return web.json_response(
                _cursor_page(job.checkpoints[::-1], query.get("after"), query.get("limit"), 10)
            )
        return self._change_ft_job(job, action)

    def _create_ft_job(self, body: Any) -> web.Response:
        if not self.fine_tuning_access:
            return _error(
                403, NO_FINE_TUNING_ACCESS, "invalid_request_error", "fine_tuning_not_available"
            )
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        for name in ("model", "training_file"):
            if not isinstance(body.get(name), str) or not body[name]:
                return _error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    name,
                )
        model = body["model"]
        with self._lock:
            tuned = {job.fine_tuned_model for job in self._ft_jobs.values()}
        known = self.known_models
        if known is not None and model not in known and model not in tuned:
            return _error(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                "invalid_request_error",
                "model_not_available",
                "model",
            )
        suffix, seed, metadata = body.get("suffix"), body.get("seed"), body.get("metadata")
        if suffix is not None and not (isinstance(suffix, str) and 1 <= len(suffix) <= 64):
            return _error(
                400,
                "Invalid 'suffix': expected a string of 1 to 64 characters.",
                "invalid_request_error",
                "invalid_value",
                "suffix",
            )
        if seed is not None and not (
            isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 2_147_483_647
        ):
            return _error(
                400,
                "Invalid 'seed': expected an integer from 0 to 2147483647.",
                "invalid_request_error",
                "invalid_value",
                "seed",
            )
        if _bad_metadata(metadata):
            return _invalid_metadata()
        method, why = _ft_method(body)
        if why is not None:
            return why
        kind = str(method["type"])
        files: dict[str, _File] = {}
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None:
                continue
            file = self._get_file(file_id) if isinstance(file_id, str) else None
            if file is None or file.purpose != "fine-tune":
                why_not = "does not exist" if file is None else f"has purpose {file.purpose!r}"
                return _error(
                    400,
                    f"Invalid '{name}': {file_id!r} {why_not}; upload it with purpose 'fine-tune'.",
                    "invalid_request_error",
                    "invalid_value",
                    name,
                )
            files[name] = file
        problem: tuple[str, str, str] | None = None
        found = _ft_file_problem(kind, files["training_file"].data, "Training", _FT_MIN_EXAMPLES)
        if found is not None:
            detail = f"The job failed due to an invalid training file. {found}"
            problem = ("invalid_training_file", detail, "training_file")
        elif "validation_file" in files:
            found = _ft_file_problem(kind, files["validation_file"].data, "Validation", 1)
            if found is not None:
                detail = f"The job failed due to an invalid validation file. {found}"
                problem = ("invalid_validation_file", detail, "validation_file")
        job_id = self._new_id("ftjob-fake")
        job = _FineTuneJob(
            id=job_id,
            model=model,
            training_file=files["training_file"].id,
            validation_file=files["validation_file"].id if "validation_file" in files else None,
            method=method,
            metadata=None if metadata is None else dict(metadata),
            suffix=suffix,
            seed=int(_digest("seed", job_id)[:7], 16) if seed is None else seed,
            problem=problem,
            tokens=count_tokens(files["training_file"].data.decode("utf-8", "replace")),
            total_steps=max(1, self.fine_tuning_steps),
        )
        job.event(f"Created fine-tuning job: {job_id}")
        validating = f"Validating training file: {job.training_file}"
        if job.validation_file:
            validating += f" and validation file: {job.validation_file}"
        job.event(validating)
        with self._lock:
            self._ft_jobs[job_id] = job
            lost = self.fine_tuning_lost_replies > 0
            if lost:
                self.fine_tuning_lost_replies -= 1
        if lost:
            return _error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        return web.json_response(job.to_json())

    def _list_ft_jobs(self, query: Mapping[str, str]) -> web.Response:
        """Newest first; ``metadata[k]=v`` keeps jobs with every such pair, ``metadata=null``
        jobs without metadata."""
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in query.items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        only_null = query.get("metadata") == "null"
        with self._lock:
            jobs = list(reversed(self._ft_jobs.values()))
            items = [
                job.to_json()
                for job in jobs
                if (
                    job.metadata is None
                    if only_null
                    else all((job.metadata or {}).get(k) == v for k, v in wanted.items())
                )
            ]
        return web.json_response(
            _cursor_page(items, query.get("after"), query.get("limit"), 20, ids=False)
        )

    def _advance_ft_job(self, job: _FineTuneJob) -> None:
        """One retrieval's worth of progress. Caller holds the lock."""
        if job.status == "validating_files":
            if job.problem is not None:
                code, message, param = job.problem
                job.status, job.error = "failed", {"code": code, "message": message, "param": param}
                job.finished_at = job.clock()
                job.event(message, level="error")
                return
            hyper = job.hyperparameters
            for name, value in _FT_AUTO.items():
                if (name != "beta" or job.kind == "dpo") and hyper.get(name, "auto") == "auto":
                    hyper[name] = value
            job.status = "queued"
            job.event("Files validated, moving job to queued state")
        elif job.status == "queued":
            job.status = "running"
            job.event("Fine-tuning job started")
        elif job.status == "running":
            job.step += 1
            metrics, checkpoint_metrics, text = _ft_metrics(job)
            job.event(f"Step {job.step}/{job.total_steps}: {text}", data=metrics)
            job.checkpoints.append(
                {
                    "object": "fine_tuning.job.checkpoint",
                    "id": f"ftckpt_{_digest(job.id, job.step)[:24]}",
                    "created_at": job.clock(),
                    "fine_tuned_model_checkpoint": f"{job.model_name}:ckpt-step-{job.step}",
                    "fine_tuning_job_id": job.id,
                    "step_number": job.step,
                    "metrics": checkpoint_metrics,
                }
            )
            del job.checkpoints[:-3]  # like OpenAI, only the last three are kept
            job.event(f"Checkpoint created at step {job.step}")
            if job.step >= job.total_steps:
                job.fine_tuned_model = job.model_name
                n_epochs = job.hyperparameters.get("n_epochs")
                job.trained_tokens = job.tokens * (n_epochs if isinstance(n_epochs, int) else 1)
                job.event(f"New fine-tuned model created: {job.fine_tuned_model}")
                job.status = "succeeded"
                job.finished_at = job.clock()
                job.event("The job has successfully completed")

    def _change_ft_job(self, job: _FineTuneJob, action: str) -> web.Response:
        """Cancel, pause or resume: allowed only from the states OpenAI allows them in."""
        allowed = {
            "cancel": ("validating_files", "queued", "running", "paused"),
            "pause": ("running",),
            "resume": ("paused",),
        }[action]
        with self._lock:
            if job.status not in allowed:
                return _error(
                    400,
                    f"Cannot {action} fine-tuning job {job.id}: its status is '{job.status}'.",
                    "invalid_request_error",
                    "invalid_job_status",
                )
            if action == "cancel":
                job.status = "cancelled"
                job.event("The job was cancelled")
            elif action == "pause":
                job.status = "paused"
                job.event("The job was paused")
            else:
                job.status = "queued"
                job.event("The job was resumed")
            return web.json_response(job.to_json())

    # -- Stored chat completions ----------------------------------------------------------

    @property
    def stored_completions(self) -> list[dict[str, Any]]:
        """Every stored chat completion as the API shows it, oldest first."""
        with self._lock:
            return [stored.to_json() for stored in self._stored.values()]

    def stored_completions_fault(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        times: int = 1,
        action: StoredAction | None = None,
    ) -> None:
        """Answer the next ``times`` stored-completions requests (``action``: only those of
        list, retrieve, messages, update or delete; None: any; never creation) with this
        error, in OpenAI's shape."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if action is not None and action not in get_args(StoredAction):
            raise ValueError(f"unknown action {action!r}; expected one of {get_args(StoredAction)}")
        with self._lock:
            self._stored_faults.extend([(action, status, message, code)] * times)

    def _store_completion(self, path: str, body: dict[str, Any], payload: dict[str, Any]) -> None:
        """Keep a ``store: true`` completion. Ids are content hashes, so a repeated request
        gets a salted one: stored completions, like OpenAI's, never share an id."""
        metadata = body.get("metadata")
        with self._lock:
            salt = 0
            while payload["id"] in self._stored:
                salt += 1
                payload["id"] = f"chatcmpl-{_digest(path, [body, salt])}"
            self._stored[payload["id"]] = _StoredCompletion(
                payload=json.loads(json.dumps(payload)),
                metadata=dict(metadata) if isinstance(metadata, dict) else {},
                messages=_store_messages(payload["id"], body["messages"]),
                requested_model=str(body["model"]),
            )

    def _serve_stored(self, request: web.Request, raw: bytes, body: Any) -> web.Response | None:
        """``GET /v1/chat/completions``, ``GET|POST|DELETE /v1/chat/completions/{id}`` and
        ``GET /v1/chat/completions/{id}/messages``; None for anything else (creation)."""
        rest = request.path.split("/")[4:]  # "", "v1", "chat", "completions", ...
        method, query = request.method, request.query
        routes: dict[tuple[int, str], StoredAction] = {
            (0, "GET"): "list",
            (1, "GET"): "retrieve",
            (1, "POST"): "update",
            (1, "DELETE"): "delete",
        }
        action: StoredAction | None = routes.get((len(rest), method))
        if len(rest) == 2 and rest[1] == "messages" and method == "GET":
            action = "messages"
        if action is None or "" in rest:
            return None
        with self._lock:
            fault = next((f for f in self._stored_faults if f[0] in (None, action)), None)
            if fault is not None:
                self._stored_faults.remove(fault)
        if fault is not None:
            _, status, message, code = fault
            kind = "server_error" if status >= 500 else "invalid_request_error"
            return _error(status, message, kind, code)
        order = query.get("order", "asc")
        if action in ("list", "messages") and order not in ("asc", "desc"):
            return _error(
                400,
                f"Invalid value for 'order': {order!r}. Expected one of ['asc', 'desc'].",
                "invalid_request_error",
                "invalid_value",
                "order",
            )
        if action == "list":
            return self._list_stored(query, order)
        with self._lock:
            stored = self._stored.get(rest[0])
        if stored is None:
            return _error(
                404,
                f"Chat completion {rest[0]!r} not found. Only completions created with "
                "store=true are kept.",
                "invalid_request_error",
                "not_found",
                "completion_id",
            )
        if action == "retrieve":
            with self._lock:
                return web.json_response(stored.to_json())
        if action == "messages":
            messages = stored.messages if order == "asc" else stored.messages[::-1]
            return web.json_response(
                _cursor_page(list(messages), query.get("after"), query.get("limit"), 20)
            )
        if action == "delete":
            with self._lock:
                self._stored.pop(stored.id, None)
            return web.json_response(
                {"object": "chat.completion.deleted", "id": stored.id, "deleted": True}
            )
        return self._update_stored(stored, raw, body)

    def _list_stored(self, query: Mapping[str, str], order: str) -> web.Response:
        """Stored completions, oldest first (``order=asc``), with every ``metadata[k]=v``
        pair and the ``model`` asked for (the request's model or its snapshot: OpenAI does
        not document which it matches, so clients must cope with either)."""
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in query.items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        model = query.get("model")
        with self._lock:
            items = [
                stored.to_json()
                for stored in self._stored.values()
                if model in (None, stored.requested_model, stored.payload["model"])
                and all(stored.metadata.get(k) == v for k, v in wanted.items())
            ]
        if order == "desc":
            items.reverse()
        return web.json_response(_cursor_page(items, query.get("after"), query.get("limit"), 20))

    def _update_stored(self, stored: _StoredCompletion, raw: bytes, body: Any) -> web.Response:
        """Replace the metadata, the only field OpenAI lets a client change."""
        if raw and body is None:
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        if not isinstance(body, dict) or "metadata" not in body:
            return _error(
                400,
                "Missing required parameter: 'metadata'.",
                "invalid_request_error",
                "missing_required_parameter",
                "metadata",
            )
        extra = sorted(set(body) - {"metadata"})
        if extra:
            return _error(
                400,
                f"Unrecognized request argument supplied: {extra[0]}. Only 'metadata' can be "
                "modified.",
                "invalid_request_error",
                "unknown_parameter",
                extra[0],
            )
        metadata = body["metadata"]
        if _bad_metadata(metadata):
            return _invalid_metadata()
        with self._lock:
            stored.metadata = dict(metadata or {})
            return web.json_response(stored.to_json())

    async def _serve_model(
        self, endpoint: str, path: str, body: Any, *, batch: bool = False
    ) -> web.Response:
        """Answer one model request; ``batch``: a batch line (no fault, latency or counting)."""
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(
                400, "you must provide a model parameter", "invalid_request_error", param="model"
            )
        if body.get("stream"):
            return _error(
                400,
                "FakeOpenAI does not implement streaming (stream=true).",
                "invalid_request_error",
                "unsupported_parameter",
                "stream",
            )
        response_format = body.get("response_format")
        if (
            self.response_formats is not None
            and isinstance(response_format, dict)
            and response_format.get("type", "text") not in {"text", *self.response_formats}
        ):
            return _error(
                self.response_format_status,
                f"response_format of type {response_format.get('type')} is not supported.",
                "invalid_request_error",
                "unsupported_parameter",
                "response_format",
            )
        if endpoint == "chat" and not isinstance(body.get("messages"), list):
            return _error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
        if endpoint == "chat" and _bad_metadata(body.get("metadata")):
            return _invalid_metadata()

        if endpoint == "chat":
            user_text, texts = _chat_texts(body)
        elif endpoint == "responses":
            user_text, texts = _responses_texts(body)
        else:
            texts = _embedding_inputs(body)
            user_text = "\n".join(texts)

        with self._lock:
            full = not batch and self.capacity is not None and self._in_flight >= self.capacity
            if full:
                self.capacity_rejections += 1
        if full:
            retry_after = self.capacity_retry_after
            return _error(
                429,
                f"Too many concurrent requests for {model} (FakeOpenAI capacity "
                f"{self.capacity}). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers={} if retry_after is None else {"Retry-After": f"{retry_after:g}"},
            )
        with self._lock:
            if not batch:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
            fault = None if batch else self._take_fault(model, user_text)
        try:
            if self.latency > 0 and not batch:
                await asyncio.sleep(self.latency)
            if fault is not None:
                response = await self._fault_response(fault, model)
                if response is not None:
                    return response
            known = self.known_models
            if known is not None and model not in known:
                return _model_not_found(model)
            digest = _digest(path, body)
            if endpoint == "embeddings":
                payload = _embeddings_payload(body, model, texts)
            else:
                try:
                    reply = self._pick_reply(model, user_text, body)
                except _ReplyError as exc:
                    return _error(500, str(exc), "server_error")
                if endpoint == "chat":
                    answered = self.chat_snapshots.get(model, model)
                    payload = _chat_payload(body, answered, reply, texts, digest)
                    if body.get("store") is True and self.stored_completions_enabled:
                        self._store_completion(path, body, payload)
                else:
                    payload = _responses_payload(body, model, reply, texts, digest)
            text = json.dumps(payload)
            if fault is not None and fault.kind == "malformed":
                text = text[: len(text) // 2]
            return web.Response(
                text=text,
                content_type="application/json",
                headers={"x-request-id": f"req_{digest}"},
            )
        finally:
            if not batch:
                with self._lock:
                    self._in_flight -= 1

    def _take_fault(self, model: str, user_text: str) -> _Fault | None:
        """Consume one use of the newest matching fault. Caller holds the lock."""
        for fault in reversed(self._faults):
            if fault.matches(model, user_text):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    async def _fault_response(self, fault: _Fault, model: str) -> web.Response | None:
        """The failure to send, or None to carry on normally (timeout, malformed)."""
        if fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return _error(
                429,
                f"Rate limit reached for {model} (FakeOpenAI fault). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        if fault.kind == "500":
            return _error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        if fault.kind == "503":
            return _error(
                503,
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "service_unavailable",
            )
        if fault.kind == "404":
            return _model_not_found(model)
        if fault.kind == "401":
            return _error(
                401,
                "Incorrect API key provided: sk-***. (FakeOpenAI fault)",
                "invalid_request_error",
                "invalid_api_key",
            )
        if fault.kind == "timeout":
            await asyncio.sleep(30.0 if fault.delay is None else fault.delay)
        return None

    def _pick_reply(self, model: str, user_text: str, body: dict[str, Any]) -> _Reply:
        with self._lock:
            rules = list(reversed(self._rules))
        for rule in rules:
            if not rule.matches(model, user_text):
                continue
            if rule.tool is not None:
                name, arguments = rule.tool
                return _Reply(None, name, json.dumps(arguments))
            text = rule.text
            if callable(text):
                try:
                    text = text(body)
                except Exception as exc:
                    traceback.print_exc()
                    raise _ReplyError(f"FakeOpenAI reply callable raised {exc!r}") from exc
            if not isinstance(text, str):
                raise _ReplyError(f"FakeOpenAI reply must be a str, got {type(text).__name__}")
            return _Reply(text)
        return _Reply(user_text)


def _bad_metadata(metadata: Any) -> bool:
    """Whether ``metadata`` breaks OpenAI's rule: at most 16 string pairs, keys <= 64 and
    values <= 512 characters (None is fine)."""
    return metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())
    )


def _invalid_metadata() -> web.Response:
    return _error(
        400,
        "Invalid 'metadata': at most 16 string pairs, keys <= 64 and values <= 512 characters.",
        "invalid_request_error",
        "invalid_value",
        "metadata",
    )


def _no_such(kind: str, object_id: str) -> web.Response:
    return _error(404, f"No such {kind}: '{object_id}'", "invalid_request_error")


def _multipart_fields(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body as {field name: (filename or None, bytes)}."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


def _batch_file_problem(data: bytes) -> str | None:
    """What is wrong with a batch input file (naming the line), or None when it is valid."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "the file is not UTF-8"
    lines = text.split("\n")
    if lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return "the file has no requests"
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        where = f"line {number}"
        try:
            item = json.loads(line)
        except ValueError:
            return f"{where} is not valid JSON"
        if not isinstance(item, dict):
            return f"{where} is not a JSON object"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return f"{where}: 'custom_id' must be a non-empty string"
        if custom_id in first_seen:
            return (
                f"{where}: 'custom_id' {custom_id!r} is not unique "
                f"(also on line {first_seen[custom_id]})"
            )
        first_seen[custom_id] = number
        if item.get("method") != "POST":
            return f"{where}: 'method' must be 'POST', got {item.get('method')!r}"
        if item.get("url") not in _MODEL_ENDPOINTS:
            return (
                f"{where}: 'url' must be one of {', '.join(_MODEL_ENDPOINTS)}, "
                f"got {item.get('url')!r}"
            )
        if not isinstance(item.get("body"), dict):
            return f"{where}: 'body' must be a JSON object"
    return None


def _batch_problem(code: str, message: str, param: str, line: int) -> dict[str, Any]:
    """One entry of a failed batch's ``errors.data`` (spec ``BatchError``)."""
    return {"code": code, "message": message, "param": param, "line": line}


def _cursor_page(
    items: list[dict[str, Any]],
    after: str | None,
    limit: str | None,
    default: int,
    *,
    ids: bool = True,
) -> dict[str, Any]:
    """One page of a cursor list: the items after the one with id ``after`` (an unknown
    ``after`` is an empty page, so a client can never loop), at most ``limit`` of them."""
    if after is not None:
        known = [item["id"] for item in items]
        items = items[known.index(after) + 1 :] if after in known else []
    size = min(int(limit), 100) if limit and limit.isdigit() and int(limit) > 0 else default
    page = items[:size]
    data: dict[str, Any] = {"object": "list", "data": page, "has_more": len(items) > size}
    if ids:
        data["first_id"] = page[0]["id"] if page else None
        data["last_id"] = page[-1]["id"] if page else None
    return data


def _ft_method(body: dict[str, Any]) -> tuple[dict[str, Any], web.Response | None]:
    """The job's ``method`` (supervised when absent), or the 400 that rejects it."""
    raw = body.get("method")
    if raw is None:
        raw = {"type": "supervised"}
    if not isinstance(raw, dict) or raw.get("type") not in _FT_METHODS:
        got = raw.get("type") if isinstance(raw, dict) else raw
        return {}, _error(
            400,
            f"Invalid value for 'method.type': {got!r}. Expected one of {list(_FT_METHODS)}.",
            "invalid_request_error",
            "invalid_value",
            "method.type",
        )
    method = json.loads(json.dumps(raw))  # a private copy: the job resolves "auto" in it
    kind = method["type"]
    settings = method.setdefault(kind, {})
    if not isinstance(settings, dict):
        return {}, _error(
            400,
            f"Invalid value for 'method.{kind}': expected an object.",
            "invalid_request_error",
            "invalid_value",
            f"method.{kind}",
        )
    legacy = body.get("hyperparameters")  # deprecated top-level form, supervised only
    if kind == "supervised" and isinstance(legacy, dict):
        settings.setdefault("hyperparameters", dict(legacy))
    if kind == "reinforcement":
        grader = settings.get("grader")
        if not isinstance(grader, dict):
            return {}, _error(
                400,
                "Missing required parameter: 'method.reinforcement.grader'.",
                "invalid_request_error",
                "missing_required_parameter",
                "method.reinforcement.grader",
            )
        if grader.get("type") not in _RFT_GRADERS:
            return {}, _error(
                400,
                f"Invalid value for 'method.reinforcement.grader.type': {grader.get('type')!r}. "
                f"Expected one of {sorted(_RFT_GRADERS)}.",
                "invalid_request_error",
                "invalid_value",
                "method.reinforcement.grader.type",
            )
    return method, None


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
    if messages[-1].get("role") != "user":
        return "key 'messages': the last message must be from the user."
    if "tools" in example and not isinstance(example["tools"], list):
        return "key 'tools': expected a list."
    return None


def _ft_file_problem(kind: str, data: bytes, what: str, minimum: int) -> str | None:
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


def _ft_metrics(job: _FineTuneJob) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(metrics event data, checkpoint metrics, event text) for the job's current step:
    the loss falls (the reward rises) with every step."""
    step, decay = job.step, 0.6**job.step
    if job.kind == "reinforcement":
        reward = round(1 - decay, 4)
        data = {
            "step": step,
            "total_steps": job.total_steps,
            "scores": {"train_reward_mean": reward},
        }
        return data, {"step": float(step)}, f"train reward mean={reward}"
    metrics: dict[str, Any] = {
        "step": step,
        "train_loss": round(1.6 * decay, 4),
        "train_mean_token_accuracy": round(1 - 0.5 * decay, 4),
    }
    text = f"training loss={metrics['train_loss']}"
    if job.validation_file:
        metrics["valid_loss"] = round(1.7 * decay, 4)
        metrics["valid_mean_token_accuracy"] = round(1 - 0.55 * decay, 4)
        text += f", validation loss={metrics['valid_loss']}"
    return {**metrics, "total_steps": job.total_steps}, {**metrics, "step": float(step)}, text


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    ordered = sorted(items, key=lambda item: str(item["id"]))
    return "".join(json.dumps(item) + "\n" for item in ordered).encode("utf-8")


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "fake-openai"}


def _completion_tokens(reply: _Reply) -> int:
    if reply.tool_name is not None:
        return count_tokens(f"{reply.tool_name} {reply.tool_arguments}")
    return count_tokens(reply.text or "")


def _chat_payload(
    body: dict[str, Any], model: str, reply: _Reply, texts: list[str], digest: str
) -> dict[str, Any]:
    n = body.get("n") or 1
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": f"call_{digest}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.tool_arguments},
            }
        ]
    finish = "stop" if reply.tool_name is None else "tool_calls"
    prompt = sum(count_tokens(t) for t in texts)
    completion = _completion_tokens(reply) * n
    return {
        "id": f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
            for i in range(n)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fakeopenai",
    }


def _responses_payload(
    body: dict[str, Any], model: str, reply: _Reply, texts: list[str], digest: str
) -> dict[str, Any]:
    item: dict[str, Any]
    if reply.tool_name is not None:
        item = {
            "type": "function_call",
            "id": f"fc_{digest}",
            "call_id": f"call_{digest}",
            "name": reply.tool_name,
            "arguments": reply.tool_arguments,
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": f"msg_{digest}",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
            ],
        }
    prompt = sum(count_tokens(t) for t in texts)
    completion = _completion_tokens(reply)
    payload: dict[str, Any] = {
        "id": f"resp_{digest}",
        "object": "response",
        "created_at": CREATED,
        "completed_at": CREATED,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": [item],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
        "metadata": body.get("metadata") or {},
    }
    if isinstance(body.get("user"), str):  # the spec has `user` as a non-nullable string
        payload["user"] = body["user"]
    return payload


def _embeddings_payload(body: dict[str, Any], model: str, texts: list[str]) -> dict[str, Any]:
    dimensions = body.get("dimensions")
    if not isinstance(dimensions, int) or dimensions < 1:
        dimensions = EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector = fake_embedding(text, dimensions)
        embedding: Any = vector
        if as_base64:  # what the SDK asks for by default: little-endian float32
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def main(argv: list[str] | None = None) -> int:
    """Serve as a separate process (benchmarks), announcing the URL on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per model request")
    parser.add_argument("--require-key", action="store_true")
    parser.add_argument("--known-models", help="comma-separated; default: every model exists")
    args = parser.parse_args(argv)
    known = None if args.known_models is None else args.known_models.split(",")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = FakeOpenAI(
        args.latency,
        host=args.host,
        port=args.port,
        known_models=known,
        require_key=args.require_key,
    )
    with server:
        print(f"BASE_URL={server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
