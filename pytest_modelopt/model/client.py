"""Every model call goes through here: retries, timeouts, usage, cost and latency.

Calls use the documented ``client.post(path, cast_to=<httpx Response>)`` form of the
official SDK, so any request parameter passes through untouched (any OpenAI-compatible
server, any new API field) and the response is parsed once, by us, into plain data.
``openai`` itself is imported on the first call only: it costs ~0.9 s of start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..images import ImageError
from ..images import inline as inline_images
from ..secrets import SHORTEST_SECRET, known_secrets, redact, register
from .cache import CacheEntry, ResponseCache, cache_key
from .failures import Failure, backoff, classify, not_sent
from .prices import cost_usd
from .sender import Sender
from .types import CallContext, Completion, ModelCallError, RequestHook, Usage
from .wire import ENDPOINTS, PARSERS, async_http_client, response_class

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

    from ..config import Price
    from .limiter import AdaptiveLimiter, Ticket


# 429s a request may meet while others get through (a busy server, not a failing one)
# without counting toward max_retries: past them they count, so a request the server
# refuses whatever the load (one larger than a tokens-per-minute quota) still ends.
BUSY_RETRIES = 16


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
        headers: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.headers = dict(headers or {})  # sent with every request, never cached or recorded
        register(*self.headers.values())
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
        self.cache_errors: list[str] = []  # answers that could not be recorded (a full disk)
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
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        """One call, retried up to ``retries`` (default: the client's max_retries) times.

        ``prepared``: the body already went through ``prepare`` (the request hook).
        ``headers``: sent with this call only (``extra_headers=``), never cached or recorded.
        """
        body, context = self._maybe_prepare(api, params, context, prepared)
        key, replayed = self._lookup(api, body, context)
        if replayed is not None:
            return replayed
        sent = _with_images(body, context)
        attempt = 0
        client = self._sync_client()
        while True:
            started = time.perf_counter()
            try:
                try:
                    response = client.post(
                        ENDPOINTS[api],
                        cast_to=response_class(),
                        body=sent,
                        options=self._options(headers),
                    )
                except Exception as exc:
                    raise not_sent(exc) from exc
                data = json.loads(response.content)
                return self._finish(api, body, data, time.perf_counter() - started, key, context)
            except Exception as exc:
                delay = self._retry_delay(self._failure(exc), attempt, context, retries)
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
        limiter: AdaptiveLimiter | None = None,
        priority: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        """``sender``: send each attempt from that helper process instead of this one.

        ``owned_loop``: the loop is the plugin's own, which closes its client at the end
        (``aclose``), so it may use the faster transport; a test's own loop keeps httpx,
        which needs no closing.

        ``limiter``: each attempt takes one of its slots (at ``priority``) and tells it how
        it went; a 429 then counts toward ``max_retries`` only if the server was failing,
        not busy (``_count_refusal``).
        """
        body, context = self._maybe_prepare(api, params, context, prepared)
        key, replayed = self._lookup(api, body, context, key)
        if replayed is not None:
            return replayed
        sent = _with_images(body, context)
        attempt = busy = 0
        refused: tuple[Ticket, Failure] | None = None  # a 429 to count once a slot is free
        client = self._async_client(owned_loop) if sender is None else None
        while True:
            ticket = await limiter.acquire(priority) if limiter is not None else None
            if refused is not None:
                assert limiter is not None
                try:
                    attempt, busy = self._count_refusal(refused, limiter, attempt, busy, context)
                except ModelCallError:
                    limiter.release()
                    raise
                refused = None
            started = time.perf_counter()
            try:
                if client is None:
                    assert sender is not None
                    content, latency = await sender.post(ENDPOINTS[api], sent, self.timeout)
                else:
                    try:
                        response = await client.post(
                            ENDPOINTS[api],
                            cast_to=response_class(),
                            body=sent,
                            options=self._options(headers),
                        )
                    except Exception as exc:
                        raise not_sent(exc) from exc
                    content, latency = response.content, time.perf_counter() - started
                completion = self._finish(api, body, json.loads(content), latency, key, context)
            except Exception as exc:
                failure = self._failure(exc, local=limiter is None)
                if limiter is not None and ticket is not None and failure.kind == "rate_limit":
                    limiter.refused(ticket)  # while it holds its slot: no waiter takes that
                    refused = ticket, failure
            else:
                if limiter is not None:
                    limiter.succeeded()
                return completion
            finally:
                if limiter is not None:
                    limiter.release()
            if refused is not None:  # counted or not when the retry has a slot
                await asyncio.sleep(backoff(attempt, failure.retry_after))
                continue
            delay = self._retry_delay(failure, attempt, context, busy=busy)
            await asyncio.sleep(delay)
            attempt += 1

    def _count_refusal(
        self,
        refused: tuple[Ticket, Failure],
        limiter: AdaptiveLimiter,
        attempt: int,
        busy: int,
        context: CallContext,
    ) -> tuple[int, int]:
        """(attempt, busy) once a refused request's retry has its slot.

        The 429 met a busy server, not a failing one, if another attempt got through
        between the refused one's start and now: the limiter hands a slot on when an
        attempt ends, so behind a quota full of slow answers the retry waits for one of
        them, however slow. Such a refusal is retried without counting toward
        ``max_retries`` (at most ``BUSY_RETRIES`` times); while nothing gets through, each
        counts, and the last one is the call's error.
        """
        ticket, failure = refused
        if limiter.successes > ticket.successes and busy < BUSY_RETRIES:
            return attempt, busy + 1
        if attempt >= self.max_retries:
            raise self._give_up(failure, attempt, context, busy)
        return attempt + 1, busy

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
        if api == "responses":
            # the Responses API stores every response unless told not to (store defaults
            # to true in OpenAI's spec): an eval's inputs and outputs must not be left there
            body.setdefault("store", False)
        if self.on_request is not None:
            self.on_request(body, context)
        return body, context

    def replay(
        self,
        api: str,
        body: dict[str, Any],
        context: CallContext,
        key: str | None = None,
        *,
        cache: ResponseCache | None = None,
    ) -> tuple[str | None, Completion | None]:
        """The body's cache key (None without a cache) and its recorded answer, if any.

        ``cache``: read that one instead of the client's (the xdist workers' scratch)."""
        cache = cache or self.cache
        if cache is None or cache.mode == "off":
            return None, None
        key = key or cache_key(ENDPOINTS[api], body, context.sample)
        entry = cache.get(key)
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

    def _failure(self, exc: Exception, *, local: bool = True) -> Failure:
        """What a failed attempt was; a ModelCallError (no retry can help) is raised as it is.

        ``local``: no limiter saw it, so ``on_failure`` (the generator's) hears of it."""
        if isinstance(exc, ModelCallError):
            raise exc
        failure = classify(exc)
        if local and self.on_failure is not None:
            self.on_failure(failure)
        return failure

    def _retry_delay(
        self,
        failure: Failure,
        attempt: int,
        context: CallContext,
        retries: int | None = None,
        *,
        busy: int = 0,
    ) -> float:
        """The wait before the next attempt, or the call's error once no retry is left.

        ``busy``: 429s retried before without counting as attempts (see ``acall``)."""
        limit = self.max_retries if retries is None else retries
        if not failure.retryable or attempt >= limit:
            raise self._give_up(failure, attempt, context, busy) from None
        return backoff(attempt, failure.retry_after)

    def _give_up(
        self, failure: Failure, attempt: int, context: CallContext, busy: int = 0
    ) -> ModelCallError:
        tries = attempt + 1 + busy
        said = f" (after {tries} attempts" if tries > 1 else ""
        if busy:
            said += f", {busy} of them refused while the server was busy"
        return ModelCallError(
            failure.kind,
            redact(failure.message, (self._api_key or "",)) + (said + ")" if said else ""),
            model=context.model,
            status=failure.status,
            attempts=tries,
        )

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
        if replayed is None:
            data = _without_secrets(data, self.secrets())
        text, tool_calls, usage = PARSERS[api](data)
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
            try:
                self.cache.put(key, entry)
            except OSError as exc:  # a paid answer is used even when it cannot be kept
                self.cache_errors.append(f"{exc.strerror or exc}")
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

        return Sender(
            base_url=self.base_url,
            api_key=self._api_key,
            processes=processes,
            transport=self.transport,
            headers=self.headers,
        )

    def secrets(self) -> tuple[str, ...]:
        """What ``redact`` must remove from any message this client's calls produce."""
        return tuple(v for v in (self._api_key, *self.headers.values()) if v)

    def _options(self, headers: Mapping[str, str] | None) -> Any:  # the SDK's RequestOptions
        options: dict[str, Any] = {"timeout": self.timeout, "max_retries": 0}
        if headers:
            register(*headers.values())  # a per-call header may be a key too
            options["headers"] = dict(headers)
        return options

    def _key(self) -> str:
        # Local OpenAI-compatible servers need no key, but the SDK insists on one.
        return self._api_key or "sk-no-key-required"

    def _sync_client(self) -> OpenAI:
        with self._lock:
            if self._sync is None:
                from openai import OpenAI  # openai costs ~0.9 s to import: only with the first call

                self._sync = OpenAI(
                    api_key=self._key(),
                    base_url=self.base_url,
                    max_retries=0,
                    default_headers=self.headers or None,
                )
            return self._sync

    def _async_client(self, owned_loop: bool = False) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            from openai import AsyncOpenAI  # openai: only with the first call

            client = AsyncOpenAI(
                api_key=self._key(),
                base_url=self.base_url,
                max_retries=0,
                http_client=async_http_client(self.transport if owned_loop else "httpx"),
                default_headers=self.headers or None,
            )
            self._async[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this loop's async client (the generator's loop, as it ends)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()


def _with_images(body: dict[str, Any], context: CallContext) -> dict[str, Any]:
    """The body as sent: its image references read into data URLs (``images.inline``),
    for this call only. An image that cannot be read is the call's error, not retried."""
    try:
        return inline_images(body)
    except ImageError as exc:
        raise ModelCallError("image", str(exc), model=context.model) from None


def _without_secrets(data: Mapping[str, Any], extra: tuple[str, ...]) -> Mapping[str, Any]:
    """A response with every known secret value (the API key, configured header values)
    replaced by ``***``: a model or proxy that echoes a key must not get it into the cache,
    the records or a report. The common case, no secret in it, costs one serialisation."""
    # a short placeholder key ("x") is no secret: replaced, it would break the JSON's keys
    known = [s for s in (*extra, *known_secrets()) if len(s) >= SHORTEST_SECRET]
    text = json.dumps(data, ensure_ascii=False)
    if not any(secret in text for secret in known):
        return data
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, "***")
    cleaned: Mapping[str, Any] = json.loads(text)
    return cleaned
