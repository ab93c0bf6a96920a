"""The one server behind every API family: lifecycle, routing and the transport.

What happens to a request on the wire, rather than in an API, lives here: recording it,
the API key, injected faults, ``capacity``, ``latency`` and in-flight counting. A family
never sees those (a batch line is answered without them, as OpenAI answers it offline),
so a fault or a latency means the same thing whatever endpoint it hits. The families are
small handler objects the server builds and asks in turn; each keeps its own state and
knobs, and ``FakeOpenAI`` forwards its public knobs to them, so tests keep setting
``server.batch_steps`` as if the server held everything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Generic,
    Literal,
    TypeAlias,
    TypeVar,
    get_args,
    overload,
)

from aiohttp import web

from ..threaded_server import ThreadedServer
from .batches import Batches
from .common import (
    MODEL_ENDPOINTS,
    Ledger,
    error,
    model_not_found,
    server_error,
    unparsable,
)
from .files import Files
from .fine_tuning import FineTuning
from .inference import Inference, Match, ReplyText
from .stored import StoredAction, StoredCompletions

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

FaultKind: TypeAlias = Literal["429", "500", "503", "timeout", "malformed", "404", "401"]
_FAULT_KINDS: Final = frozenset(get_args(FaultKind))
#: A family's routes: the response, or None when the request is not the family's.
_Route: TypeAlias = Callable[[web.Request, bytes, Any], Awaitable[web.Response | None]]
_T = TypeVar("_T")


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
class _Fault(Match):
    """An injected failure; ``remaining`` None means it never runs out."""

    kind: FaultKind = "500"
    remaining: int | None = 1
    retry_after: float | None = None
    delay: float | None = None


class _Knob(Generic[_T]):
    """A ``FakeOpenAI`` attribute kept by the family it drives (same name there)."""

    def __init__(self, family: str) -> None:
        self._family = family
        self._name = ""

    def __set_name__(self, owner: type[object], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type[object]) -> _Knob[_T]: ...
    @overload
    def __get__(self, server: FakeOpenAI, owner: type[object]) -> _T: ...
    def __get__(self, server: FakeOpenAI | None, owner: type[object]) -> _T | _Knob[_T]:
        if server is None:
            return self
        value: _T = getattr(getattr(server, self._family), self._name)
        return value

    def __set__(self, server: FakeOpenAI, value: _T) -> None:
        setattr(getattr(server, self._family), self._name, value)


class FakeOpenAI(ThreadedServer):
    """An OpenAI-compatible aiohttp server on 127.0.0.1 with scripted, deterministic replies.

    Use ``reply``/``reply_tool_call`` to script answers and ``fault`` to inject failures;
    everything else echoes the last user message. ``reset()`` restores a clean slate
    (including ``latency``, ``known_models`` and ``require_key`` as given here, and every
    other setting's default), so one server can be shared across tests. How batches and
    fine-tuning jobs progress is told in ``batches`` and ``fine_tuning``.
    """

    # -- settings kept by a family (see reset() there for the default) ------------------

    #: Models that exist; None means every model exists.
    known_models = _Knob[set[str] | None]("_inference")
    #: The response_format types accepted (None: all). {"json_object"} acts like
    #: llama.cpp's server, which also answers with ``response_format_status`` 500.
    response_formats = _Knob[set[str] | None]("_inference")
    response_format_status = _Knob[int]("_inference")
    #: The model a chat reply names for the one asked, as OpenAI answers ``gpt-4o``
    #: with ``gpt-4o-2024-08-06``; unlisted models answer as themselves.
    chat_snapshots = _Knob[dict[str, str]]("_inference")
    #: Retrievals (``GET /v1/batches/{id}``) a batch takes to complete; 0: done at once.
    batch_steps = _Knob[int]("_batches")
    #: The next N batch retrievals answer 500: an outage while a client polls.
    batch_retrieve_errors = _Knob[int]("_batches")
    #: When False, creating a fine-tuning job is a 403: an organisation without access.
    fine_tuning_access = _Knob[bool]("_fine_tuning")
    #: Retrievals a job spends ``running`` (one metrics event and checkpoint each).
    fine_tuning_steps = _Knob[int]("_fine_tuning")
    #: The next N job creations create the job, then answer 500: a reply lost on the way.
    fine_tuning_lost_replies = _Knob[int]("_fine_tuning")

    def __init__(
        self,
        latency: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        known_models: Iterable[str] | None = None,
        require_key: bool = False,
    ) -> None:
        super().__init__(host, port)
        self._initial = (latency, require_key)
        self._ledger = Ledger()
        self._lock = self._ledger.lock
        self._inference = Inference(self._ledger, known_models, store=self._keep)
        self._files = Files(self._ledger)
        self._batches = Batches(self._ledger, self._files, self._inference.answer_line)
        self._fine_tuning = FineTuning(
            self._ledger, self._files, lambda: self._inference.known_models
        )
        self._stored = StoredCompletions(self._ledger)
        #: Seconds added (via ``asyncio.sleep``) to every chat/responses/embeddings request.
        self.latency: float = latency
        #: When True, a request without ``Authorization: Bearer <key>`` gets a 401.
        self.require_key: bool = require_key
        #: When False the Files and Batch APIs answer 404, like a server without them.
        self.batches_enabled: bool = True
        #: When False the fine-tuning API answers 404, like a server without it.
        self.fine_tuning_enabled: bool = True
        #: When False the stored-completions API answers 404 (``store`` is then ignored),
        #: like vLLM, Ollama and most compatible servers.
        self.stored_completions_enabled: bool = True
        #: Most model requests served at once (None: no limit); one more is answered 429
        #: at once, as a gateway with a concurrency quota does, with ``Retry-After:
        #: capacity_retry_after`` seconds when that is set.
        self.capacity: int | None = None
        self.capacity_retry_after: float | None = None
        #: Model requests answered 429 because of ``capacity``.
        self.capacity_rejections: int = 0
        self._requests: list[RecordedRequest] = []
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
        self._inference.reply(text, model, contains)

    def reply_tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        model: str | None = None,
        contains: str | None = None,
        until_tool_output: bool | int = False,
    ) -> None:
        """Answer matching requests with one function tool call ``name(**arguments)``.

        ``until_tool_output``: only while the request holds no tool output yet (an agent's
        first turn); the turn after the tool ran falls through to the other rules. A
        number N: while it holds fewer than N (an older rule with N=2 then answers the
        second turn)."""
        self._inference.reply_tool_call(name, arguments, model, contains, until_tool_output)

    def answer_details(
        self,
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        incomplete: str | None = None,
    ) -> None:
        """Make every answer report ``cached_tokens`` of its input as cached (at most all of
        it), spend ``reasoning_tokens`` more output tokens on reasoning (a Responses answer
        then starts with a reasoning item), and, with ``incomplete`` (``max_output_tokens``,
        ``content_filter``), stop short: ``status: incomplete`` with that reason, or a chat
        ``finish_reason`` of ``length`` / ``content_filter``."""
        with self._lock:
            self._inference.details = {
                "cached_tokens": cached_tokens,
                "reasoning_tokens": reasoning_tokens,
                "incomplete": incomplete,
            }

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

    def fine_tuning_fault(
        self, status: int, message: str, *, code: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` fine-tuning requests with this error, in OpenAI's shape:
        e.g. a 401 "Missing scopes" of a restricted key, or a 503 while a client polls."""
        self._fine_tuning.fault(status, message, code, times)

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
        self._stored.fault(status, message, code, times, action)

    def reset(self) -> None:
        """Forget rules, faults, recorded requests and counters; restore initial settings."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._max_in_flight = self._in_flight
            self.latency, self.require_key = self._initial
            self.batches_enabled = True
            self.fine_tuning_enabled = True
            self.stored_completions_enabled = True
            self.capacity = None
            self.capacity_retry_after = None
            self.capacity_rejections = 0
            self._inference.reset()
            self._files.reset()
            self._batches.reset()
            self._fine_tuning.reset()
            self._stored.reset()

    # -- what tests read -----------------------------------------------------------------

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

    @property
    def fine_tuning_jobs(self) -> list[dict[str, Any]]:
        """Every fine-tuning job as the API shows it, oldest first (without advancing it)."""
        return self._fine_tuning.jobs

    @property
    def stored_completions(self) -> list[dict[str, Any]]:
        """Every stored chat completion as the API shows it, oldest first."""
        return self._stored.completions

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
        families: tuple[tuple[bool, _Route], ...] = (
            (self.fine_tuning_enabled, self._fine_tuning.route),
            (self.batches_enabled, self._files.route),
            (self.batches_enabled, self._batches.route),
            (self.stored_completions_enabled, self._stored.route),
        )
        for enabled, route in families:
            response = await route(request, raw, body) if enabled else None
            if response is not None:
                return response
        endpoint = MODEL_ENDPOINTS.get(request.path)
        if request.method == "POST" and endpoint is not None:
            if raw and body is None:
                return unparsable()
            return await self._serve_model(endpoint, request.path, body)
        models = self._inference.models(request)
        if models is not None:
            return models
        return error(
            404,
            f"Invalid URL ({request.method} {request.path})",
            "invalid_request_error",
        )

    def _keep(self, path: str, body: dict[str, Any], payload: dict[str, Any]) -> None:
        """Where inference hands a ``store: true`` chat completion (ignored while off)."""
        if self.stored_completions_enabled:
            self._stored.keep(path, body, payload)

    async def _serve_model(self, endpoint: str, path: str, body: Any) -> web.Response:
        """One live model request: checked, then through capacity, faults and latency."""
        call = self._inference.check(endpoint, body)
        if isinstance(call, web.Response):
            return call
        with self._lock:
            full = self.capacity is not None and self._in_flight >= self.capacity
            if full:
                self.capacity_rejections += 1
        if full:
            retry_after = self.capacity_retry_after
            return error(
                429,
                f"Too many concurrent requests for {call.model} (FakeOpenAI capacity "
                f"{self.capacity}). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers={} if retry_after is None else {"Retry-After": f"{retry_after:g}"},
            )
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            fault = self._take_fault(call.model, call.user_text)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if fault is not None:
                response = await self._fault_response(fault, call.model)
                if response is not None:
                    return response
            answer = self._inference.answer(call, path, body)
            if isinstance(answer, web.Response):
                return answer
            text = answer.text
            if fault is not None and fault.kind == "malformed":
                text = text[: len(text) // 2]
            return answer.response(text)
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
            return error(
                429,
                f"Rate limit reached for {model} (FakeOpenAI fault). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        if fault.kind == "500":
            return server_error()
        if fault.kind == "503":
            return error(
                503,
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "service_unavailable",
            )
        if fault.kind == "404":
            return model_not_found(model)
        if fault.kind == "401":
            return error(
                401,
                "Incorrect API key provided: sk-***. (FakeOpenAI fault)",
                "invalid_request_error",
                "invalid_api_key",
            )
        if fault.kind == "timeout":
            await asyncio.sleep(30.0 if fault.delay is None else fault.delay)
        return None


def _has_bearer(headers: Mapping[str, str]) -> bool:
    auth = headers.get("Authorization", "")
    return auth.lower().startswith("bearer ") and bool(auth[7:].strip())


def _invalid_key(headers: Mapping[str, str]) -> web.Response:
    auth = headers.get("Authorization", "")
    key = auth[7:] if auth.lower().startswith("bearer ") else ""
    if not key.strip():
        return error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    return error(
        401,
        f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
        "invalid_request_error",
        "invalid_api_key",
    )
