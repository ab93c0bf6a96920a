"""A deterministic, local, OpenAI-compatible HTTP server for the test suite.

No test may reach the internet, and openai 3.x talks HTTP through httpx2, which RESPX
cannot intercept. So the tests point the real ``openai`` SDK at this server via
``base_url`` and exercise the real wire format: status codes, headers, JSON bodies.

The server runs its own asyncio loop in a daemon thread, so synchronous tests can drive
it directly and subprocesses (pytest-xdist workers, benchmarks) reach it over HTTP.
It also serves the Files and Batch APIs (``/v1/files``, ``/v1/batches``) in memory, so
batch submission can be tested end to end; ``batches_enabled = False`` turns them off
(a compatible server without them). Run it standalone with::

    python tests/support/fake_openai.py --port 0 --latency 0.1

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
import socket
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

# httpx2 imports httpcore2 lazily and caches its exception classes on first use. If that
# first use is inside a pytester in-process run, pytester then drops httpcore2 from
# sys.modules; the next client re-imports it, the cache holds stale classes, and a read
# timeout escapes as a raw httpcore2.ReadTimeout instead of openai.APITimeoutError.
# The test suite imports this module early, so importing httpcore2 here prevents that.
with contextlib.suppress(ImportError):
    import httpcore2  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import FrameType, TracebackType

__all__ = [
    "CREATED",
    "DEFAULT_MODELS",
    "FakeOpenAI",
    "FaultKind",
    "RecordedRequest",
    "ReplyText",
    "count_tokens",
    "fake_embedding",
]

FaultKind: TypeAlias = Literal["429", "500", "503", "timeout", "malformed", "404", "401"]
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


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert on what the client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


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


class FakeOpenAI:
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
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._serial = 0
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._faults: list[_Fault] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Bind the socket here (so a busy port fails loudly) and serve from a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open(sock))
            except BaseException as exc:  # hand it to start(), which re-raises it
                failure.append(exc)
                sock.close()
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("FakeOpenAI did not start within 10 s")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    async def _open(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gave up (timeout fault) frees its handler;
        # shutdown_timeout: stop() must not wait for a 30 s timeout fault to finish.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    def stop(self) -> None:
        """Shut the server down and join its thread; safe to call twice."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if runner is not None:
                await runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10.0)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10.0)
            self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the real one once started, even when constructed with 0)."""
        return self._port

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
            self._files.clear()
            self._batches.clear()

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
        )
        with self._lock:
            self._requests.append(record)

        if self.require_key and not _has_bearer(request.headers):
            return _invalid_key(request.headers)
        if self.batches_enabled:
            platform = await self._serve_platform(request, raw, body)
            if platform is not None:
                return platform
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
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(
                isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items()
            )
        ):
            return _error(
                400,
                "Invalid 'metadata': at most 16 string pairs, keys <= 64 and values <= 512 "
                "characters.",
                "invalid_request_error",
                "invalid_value",
                "metadata",
            )
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

        if endpoint == "chat":
            user_text, texts = _chat_texts(body)
        elif endpoint == "responses":
            user_text, texts = _responses_texts(body)
        else:
            texts = _embedding_inputs(body)
            user_text = "\n".join(texts)

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
                    payload = _chat_payload(body, model, reply, texts, digest)
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
