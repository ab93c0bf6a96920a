"""A deterministic, local, OpenAI-compatible HTTP server for the test suite.

No test may reach the internet, and openai 3.x talks HTTP through httpx2, which RESPX
cannot intercept. So the tests point the real ``openai`` SDK at this server via
``base_url`` and exercise the real wire format: status codes, headers, JSON bodies.

The server runs its own asyncio loop in a daemon thread, so synchronous tests can drive
it directly and subprocesses (pytest-xdist workers, benchmarks) reach it over HTTP.
Run it standalone with::

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
from dataclasses import dataclass
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
    (including ``latency``, ``known_models`` and ``require_key`` as given here), so one
    server can be shared across tests.
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

    async def _serve_model(self, endpoint: str, path: str, body: Any) -> web.StreamResponse:
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
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            fault = self._take_fault(model, user_text)
        try:
            if self.latency > 0:
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
