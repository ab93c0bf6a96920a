"""Every model call goes through here: retries, timeouts, usage, cost and latency.

Calls use the documented ``client.post(path, cast_to=<httpx Response>)`` form of the
official SDK, so any request parameter passes through untouched (any OpenAI-compatible
server, any new API field) and the response is parsed once, by us, into plain data.
``openai`` itself is imported on the first call only: it costs ~0.9 s of start-up.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cache import CacheEntry, ResponseCache, cache_key
from .prices import cost_usd

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

    from .config import Price
    from .sender import Sender

ENDPOINTS = {"chat": "/chat/completions", "responses": "/responses", "embeddings": "/embeddings"}
MAX_RETRY_AFTER = 120.0
_jitter = random.Random(0x5EED)
# API keys, bearer headers and GitHub tokens (classic and fine-grained)
_SECRET_PATTERN = re.compile(
    r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+"
    r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,})"
)


@dataclass(frozen=True)
class Usage:
    """Token counts in one shape for both APIs; cached and reasoning are subsets, not extras."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass
class Completion:
    """What a model answered, with what it cost; graders and records read this."""

    text: str
    model: str
    api: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    latency_s: float = 0.0
    cached: bool = False
    request: dict[str, Any] = field(default_factory=dict, repr=False)
    response: dict[str, Any] | None = field(default=None, repr=False)

    @functools.cached_property
    def json(self) -> Any:
        """The output parsed as JSON (also inside a ``` fence), or None when it isn't JSON."""
        return parse_json_output(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 80 else self.text[:79] + "…"
        return f"Completion({text!r}, model={self.model!r})"


def parse_json_output(text: str) -> Any:
    stripped = text.strip()
    fence = re.match(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```$", stripped, re.DOTALL)
    if fence:
        stripped = fence.group(1).strip()
    if not stripped or stripped[0] not in '[{"0123456789-tfn':
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


class ModelCallError(Exception):
    """A call that failed for good; recorded as an *error* on its case, never as a grade."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        model: str = "",
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.model = model
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for hooks and records: the eval, case and sample behind a request."""

    endpoint: str
    model: str
    sample: int = 0
    eval: str | None = None
    case_id: str | None = None


RequestHook = Callable[[dict[str, Any], CallContext], None]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Strip API keys and bearer tokens from text that may end up in a record or a log."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PATTERN.sub("***", text)


def parse_chat(data: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], Usage]:
    choices = data.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        raise ValueError("response has no choices")
    message = choices[0].get("message") or {}
    text = message.get("content") or message.get("refusal") or ""
    tool_calls = list(message.get("tool_calls") or [])
    raw = data.get("usage") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    usage = Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )
    return str(text), tool_calls, usage


def parse_responses(data: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], Usage]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in data.get("output") or []:
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    texts.append(part.get("refusal") or "")
        elif item.get("type") == "function_call":
            tool_calls.append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
            )
    if data.get("status") not in (None, "completed", "incomplete"):
        raise ValueError(f"response status is {data.get('status')!r}")
    raw = data.get("usage") or {}
    usage = Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        reasoning_tokens=int((raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
    )
    return "".join(texts), tool_calls, usage


def parse_embeddings(data: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], Usage]:
    items = data.get("data")
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError("embeddings response has no data list")
    raw = data.get("usage") or {}
    return "", [], Usage(prompt_tokens=int(raw.get("prompt_tokens") or 0))


_PARSERS = {"chat": parse_chat, "responses": parse_responses, "embeddings": parse_embeddings}


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
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
            from email.utils import parsedate_to_datetime

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
    from .sender import SenderFailure

    if isinstance(exc, SenderFailure):  # classified by the sender process already
        return exc.failure
    if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
        return Failure("malformed", f"unreadable response: {exc}", None, True)
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", "the request timed out", None, True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection", f"cannot connect: {exc}", None, True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        headers = dict(exc.response.headers) if exc.response is not None else None
        if status == 429:
            return Failure("rate_limit", message, status, True, _retry_after(headers))
        if status >= 500 or status in (408, 409):
            return Failure("server", message, status, True, _retry_after(headers))
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


class ModelClient:
    """One per process: shares connections, settings and the request hook across all calls."""

    def __init__(
        self,
        *,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        provider: str = "openai",
        prices: Mapping[str, Price] | None = None,
        on_request: RequestHook | None = None,
        environ: Mapping[str, str] | None = None,
        cache: ResponseCache | None = None,
        store: bool = False,
        transport: str = "auto",
    ) -> None:
        env = os.environ if environ is None else environ
        self.transport = transport
        self.store = store  # eval calls go out with store=true and metadata naming the case
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.provider = provider
        self.prices = dict(prices or {})
        self.on_request = on_request
        self.cache = cache
        self.on_failure: Callable[[Failure], None] | None = None  # the generator's limiter
        self._api_key = env.get("OPENAI_API_KEY") or None
        self._sync: OpenAI | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    # -- public calls -------------------------------------------------------------------

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        context: CallContext | None = None,
        **params: Any,
    ) -> Completion:
        return self.call("chat", {"model": model, "messages": messages, **params}, context)

    def respond(
        self, model: str, input: Any, *, context: CallContext | None = None, **params: Any
    ) -> Completion:
        return self.call("responses", {"model": model, "input": input, **params}, context)

    async def achat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        context: CallContext | None = None,
        **params: Any,
    ) -> Completion:
        return await self.acall("chat", {"model": model, "messages": messages, **params}, context)

    async def arespond(
        self, model: str, input: Any, *, context: CallContext | None = None, **params: Any
    ) -> Completion:
        return await self.acall("responses", {"model": model, "input": input, **params}, context)

    def embed(
        self, model: str, texts: list[str], *, context: CallContext | None = None
    ) -> tuple[list[list[float]], Completion]:
        """Embedding vectors in input order, and the call (for its usage and cost)."""
        call = self.call("embeddings", {"model": model, "input": texts}, context)
        items = sorted(call.response["data"] if call.response else [], key=lambda d: d["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in items]
        return vectors, call

    def call(
        self,
        api: str,
        params: dict[str, Any],
        context: CallContext | None = None,
        *,
        retries: int | None = None,
        prepared: bool = False,
    ) -> Completion:
        """One call, retried up to ``retries`` (default: the client's max_retries) times.

        ``prepared``: the body already went through ``prepare`` (the request hook).
        """
        body, context = self._maybe_prepare(api, params, context, prepared)
        key, replayed = self._lookup(api, body, context)
        if replayed is not None:
            return replayed
        attempt = 0
        client = self._sync_client()
        while True:
            started = time.perf_counter()
            try:
                response = client.post(
                    ENDPOINTS[api],
                    cast_to=_response_class(),
                    body=body,
                    options={"timeout": self.timeout, "max_retries": 0},
                )
                data = json.loads(response.content)
                return self._finish(api, body, data, time.perf_counter() - started, key, context)
            except Exception as exc:
                delay = self._retry_delay(exc, attempt, context, retries)
            time.sleep(delay)
            attempt += 1

    async def acall(
        self,
        api: str,
        params: dict[str, Any],
        context: CallContext | None = None,
        *,
        prepared: bool = False,
        key: str | None = None,
        sender: Sender | None = None,
        owned_loop: bool = False,
    ) -> Completion:
        """``sender``: send each attempt from that helper process instead of this one.

        ``owned_loop``: the loop is the plugin's own, which closes its client at the end
        (``aclose``), so it may use the faster transport; a test's own loop keeps httpx,
        which needs no closing.
        """
        body, context = self._maybe_prepare(api, params, context, prepared)
        key, replayed = self._lookup(api, body, context, key)
        if replayed is not None:
            return replayed
        attempt = 0
        client = self._async_client(owned_loop) if sender is None else None
        while True:
            started = time.perf_counter()
            try:
                if client is None:
                    assert sender is not None
                    content, latency = await sender.post(ENDPOINTS[api], body, self.timeout)
                else:
                    response = await client.post(
                        ENDPOINTS[api],
                        cast_to=_response_class(),
                        body=body,
                        options={"timeout": self.timeout, "max_retries": 0},
                    )
                    content, latency = response.content, time.perf_counter() - started
                return self._finish(api, body, json.loads(content), latency, key, context)
            except Exception as exc:
                delay = self._retry_delay(exc, attempt, context)
            await asyncio.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # -- internals ----------------------------------------------------------------------

    def _maybe_prepare(
        self, api: str, params: dict[str, Any], context: CallContext | None, prepared: bool
    ) -> tuple[dict[str, Any], CallContext]:
        if prepared and context is not None:
            return params, context
        return self.prepare(api, params, context)

    def prepare(
        self, api: str, params: dict[str, Any], context: CallContext | None = None
    ) -> tuple[dict[str, Any], CallContext]:
        """The body as it will be sent: a copy, adjusted by the request hook."""
        if api not in ENDPOINTS:
            raise ValueError(f"unknown api {api!r}; expected one of {sorted(ENDPOINTS)}")
        body = dict(params)
        context = context or CallContext(endpoint=ENDPOINTS[api], model=str(body.get("model")))
        if self.store and api == "chat" and context.eval is not None:
            body["store"] = True
            body["metadata"] = {
                **(body.get("metadata") or {}),
                "modelopt_eval": context.eval[:512],
                "modelopt_case": str(context.case_id)[:512],
            }
        if self.on_request is not None:
            self.on_request(body, context)
        return body, context

    def replay(
        self, api: str, body: dict[str, Any], context: CallContext, key: str | None = None
    ) -> tuple[str | None, Completion | None]:
        """The body's cache key (None without a cache) and its recorded answer, if any."""
        if self.cache is None or self.cache.mode == "off":
            return None, None
        key = key or cache_key(ENDPOINTS[api], body, context.sample)
        entry = self.cache.get(key)
        if entry is None:
            return key, None
        try:
            completion = self._finish(api, body, entry.response, entry.latency_s, replayed=entry)
        except (ValueError, KeyError, TypeError, AttributeError):  # not a response: call again
            return key, None
        completion.cached = True
        return key, completion

    def _lookup(
        self, api: str, body: dict[str, Any], context: CallContext, key: str | None = None
    ) -> tuple[str | None, Completion | None]:
        """A recorded answer if the cache has one; else check that a live call can be made.

        ``key``: the body's cache key when the caller has computed it already.
        """
        key, completion = self.replay(api, body, context, key)
        if completion is not None:
            return key, completion
        if self.cache is not None and self.cache.mode == "none":
            where = f" (eval {context.eval}, case {context.case_id})" if context.eval else ""
            raise ModelCallError(
                "not_recorded",
                f"no recorded response for this {context.model} call{where} and "
                "--eval-record none allows no live call: record it with "
                "`pytest --eval-record new` (needs OPENAI_API_KEY or OPENAI_BASE_URL)",
                model=context.model,
            )
        if self._api_key is None and self.base_url is None:
            raise ModelCallError(
                "no_key",
                "OPENAI_API_KEY is not set. Export it (export OPENAI_API_KEY=sk-...), point "
                "the evals at a local server (run `modelopt serve-local` and set "
                "OPENAI_BASE_URL to the URL it prints), or replay recorded responses with "
                "--eval-record none.",
                model=context.model,
            )
        return key, None

    def _retry_delay(
        self, exc: Exception, attempt: int, context: CallContext, retries: int | None = None
    ) -> float:
        if isinstance(exc, ModelCallError):
            raise exc
        failure = classify(exc)
        if self.on_failure is not None:
            self.on_failure(failure)
        limit = self.max_retries if retries is None else retries
        if not failure.retryable or attempt >= limit:
            tries = f" (after {attempt + 1} attempts)" if attempt else ""
            raise ModelCallError(
                failure.kind,
                redact(failure.message, (self._api_key or "",)) + tries,
                model=context.model,
                status=failure.status,
                attempts=attempt + 1,
            ) from None
        return backoff(attempt, failure.retry_after)

    def _finish(
        self,
        api: str,
        body: dict[str, Any],
        data: Any,
        latency: float,
        key: str | None = None,
        context: CallContext | None = None,
        replayed: CacheEntry | None = None,
    ) -> Completion:
        """Parse a response; a live one (with a cache key) is recorded first.

        A replay keeps the cost it was priced at when recorded (no price table needed),
        unless config prices the model or the entry predates recorded costs.
        """
        if not isinstance(data, Mapping):
            raise ValueError("response body is not a JSON object")
        text, tool_calls, usage = _PARSERS[api](data)
        requested = str(body.get("model"))
        served = str(data.get("model") or requested)
        cost: float | None
        if replayed is not None and replayed.cost_recorded and requested not in self.prices:
            cost = replayed.cost_usd
        else:
            cost = self.cost(requested, usage)
            if cost is None and served != requested:
                cost = self.cost(served, usage)
        if key is not None and self.cache is not None:
            entry = CacheEntry(
                endpoint=ENDPOINTS[api],
                sample=context.sample if context else 0,
                request=body,
                response=dict(data),
                latency_s=latency,
                created_at=time.time(),
                cost_usd=cost,
                cost_recorded=True,
            )
            self.cache.put(key, entry)
        return Completion(
            text=text,
            model=served,
            api=api,
            tool_calls=tool_calls,
            usage=usage,
            cost=cost,
            latency_s=latency,
            request=body,
            response=dict(data),
        )

    def cost(self, model: str, usage: Usage) -> float | None:
        return cost_usd(model, usage, provider=self.provider, overrides=self.prices)

    def sdk(self) -> OpenAI:
        """The official SDK client behind this one (for Files, Batches, Fine-tuning...)."""
        return self._sync_client()

    def sender(self, processes: int = 1) -> Sender:
        """Helper processes that send this client's requests (see sender.py)."""
        from .sender import Sender

        return Sender(
            base_url=self.base_url,
            api_key=self._api_key,
            processes=processes,
            transport=self.transport,
        )

    def secrets(self) -> tuple[str, ...]:
        """What ``redact`` must remove from any message this client's calls produce."""
        return (self._api_key,) if self._api_key else ()

    def _key(self) -> str:
        # Local OpenAI-compatible servers need no key, but the SDK insists on one.
        return self._api_key or "sk-no-key-required"

    def _sync_client(self) -> OpenAI:
        with self._lock:
            if self._sync is None:
                from openai import OpenAI

                self._sync = OpenAI(api_key=self._key(), base_url=self.base_url, max_retries=0)
            return self._sync

    def _async_client(self, owned_loop: bool = False) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(
                api_key=self._key(),
                base_url=self.base_url,
                max_retries=0,
                http_client=async_http_client(self.transport if owned_loop else "httpx"),
            )
            self._async[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this loop's async client (the generator's loop, as it ends)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()


def async_http_client(transport: str) -> Any:
    """The SDK's aiohttp-backed client, or None for its default httpx one.

    openai[aiohttp] spends about a third less CPU than httpx on each request (measured in
    docs/benchmarks.md); ``auto`` takes it whenever the SDK and aiohttp provide it.
    """
    if transport == "httpx":
        return None
    import openai

    factory = getattr(openai, "DefaultAioHttpClient", None)
    try:
        if factory is None:
            raise RuntimeError("this openai SDK has no DefaultAioHttpClient")
        return factory()
    except RuntimeError as exc:  # the SDK's own message when aiohttp is not installed
        if transport == "auto":
            return None
        raise ModelCallError(
            "client",
            f"--eval-transport aiohttp: {exc}; pip install 'openai[aiohttp]' or use httpx",
        ) from None


def sdk_data(obj: Any) -> dict[str, Any]:
    """An SDK object as plain JSON data (the same across SDK versions)."""
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    data = to_dict() if callable(to_dict) else obj.model_dump()
    return dict(data)


def _response_class() -> type[Any]:
    """The httpx flavour the installed SDK uses (httpx2 from openai 3.x, httpx before).

    Looked up on every call, not cached: the class must be the one the SDK's module sees.
    """
    for name in ("httpx2", "httpx"):
        try:
            response: type[Any] = importlib.import_module(name).Response
        except ImportError:  # pragma: no cover - openai < 3 uses httpx
            continue
        return response
    raise ModelCallError("client", "neither httpx2 nor httpx is installed (openai needs one)")


class BoundModel:
    """The ``llm`` fixture: the model under test, with calls counted on the current case."""

    def __init__(
        self,
        client: ModelClient,
        name: str,
        *,
        sample: int = 0,
        eval: str | None = None,
        case_id: str | None = None,
        on_call: Callable[[Completion, Any], None] | None = None,
    ) -> None:
        self._client = client
        self.name = name
        self.sample = sample
        self._eval = eval
        self._case_id = case_id
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"<llm {self.name}>"

    def _context(self, api: str) -> CallContext:
        return CallContext(ENDPOINTS[api], self.name, self.sample, self._eval, self._case_id)

    def _seen(self, completion: Completion, input: Any) -> Completion:
        if self._on_call is not None:
            self._on_call(completion, input)
        return completion

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        """Chat Completions with this model; ``params`` go into the request body as they are."""
        body = {"model": self.name, "messages": messages, **params}
        return self._seen(self._client.call("chat", body, self._context("chat")), messages)

    def respond(self, input: Any, **params: Any) -> Completion:
        """The Responses API with this model; ``input`` is a string or a list of items."""
        body = {"model": self.name, "input": input, **params}
        return self._seen(self._client.call("responses", body, self._context("responses")), input)

    async def achat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        body = {"model": self.name, "messages": messages, **params}
        return self._seen(await self._client.acall("chat", body, self._context("chat")), messages)

    async def arespond(self, input: Any, **params: Any) -> Completion:
        body = {"model": self.name, "input": input, **params}
        completion = await self._client.acall("responses", body, self._context("responses"))
        return self._seen(completion, input)
