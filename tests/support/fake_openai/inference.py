"""What the model "says": chat completions, responses and embeddings, and ``/v1/models``.

Replies are a function of the request alone (an echo of the last user message unless a
rule says otherwise), and ids are content hashes, so a rerun of a test sees the very same
bytes. A request is answered in two halves, ``check`` and ``answer``: the server runs its
transport (capacity, faults, latency) between them, and a batch line runs neither, so a
batch answers a line exactly as the live endpoint answers a call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aiohttp import web

from .common import (
    CREATED,
    MODEL_ENDPOINTS,
    bad_metadata,
    content_text,
    count_tokens,
    digest,
    error,
    invalid_metadata,
    missing,
    model_not_found,
    not_an_object,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .common import Ledger

#: A reply: fixed text, or a function of the request body (called on the server thread).
ReplyText: TypeAlias = str | Callable[[dict[str, Any]], str]
#: Keeps a chat completion created with ``store: true``: (path, request body, payload).
Store: TypeAlias = Callable[[str, dict[str, Any], dict[str, Any]], None]

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
_WORD: Final = re.compile(r"\w+")


@dataclass
class Match:
    """Which model requests a rule (or a fault) is for: None matches any."""

    model: str | None
    contains: str | None

    def matches(self, model: str, user_text: str) -> bool:
        return (self.model is None or self.model == model) and (
            self.contains is None or self.contains in user_text
        )


@dataclass
class _Rule(Match):
    """A canned answer; ``text`` or ``tool`` (name, arguments) is set, never both."""

    text: ReplyText | None = None
    tool: tuple[str, dict[str, Any]] | None = None
    # a tool call rule that stands aside once the request holds a tool's output, so that
    # an agent loop (call the tool, then answer from its output) ends; a number N: once
    # it holds N tool outputs (N turns of tool calls before the answer)
    until_tool_output: bool | int = False


@dataclass(frozen=True)
class _Reply:
    """What the model "says": plain text, or one function tool call."""

    text: str | None
    tool_name: str | None = None
    tool_arguments: str | None = None


class _ReplyError(Exception):
    """A reply callable failed: surface it as a 500 the test can read."""


@dataclass(frozen=True)
class Call:
    """A model request that passed ``check``: what faults and rules match on."""

    endpoint: str
    model: str
    user_text: str
    texts: list[str]


@dataclass(frozen=True)
class Answer:
    """A model request's successful reply, before the transport sends it."""

    payload: dict[str, Any]
    digest: str

    @property
    def text(self) -> str:
        return json.dumps(self.payload)

    def response(self, text: str) -> web.Response:
        """The reply with body ``text`` (the payload's JSON, unless the transport broke it)."""
        return web.Response(
            text=text,
            content_type="application/json",
            headers={"x-request-id": f"req_{self.digest}"},
        )


class Inference:
    """The model endpoints' rules and knobs; see ``FakeOpenAI`` for what each knob means."""

    def __init__(self, ledger: Ledger, known_models: Iterable[str] | None, store: Store) -> None:
        self._lock = ledger.lock
        self._store = store
        self._initial_models = None if known_models is None else set(known_models)
        self._rules: list[_Rule] = []
        self.known_models: set[str] | None = None
        self.response_formats: set[str] | None = None
        self.response_format_status = 400
        self.chat_snapshots: dict[str, str] = {}
        self.details: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the rules and restore the knobs. Caller holds the lock (or owns ``self``)."""
        self._rules.clear()
        known = self._initial_models
        self.known_models = None if known is None else set(known)
        self.response_formats = None
        self.response_format_status = 400
        self.chat_snapshots = {}
        self.details = {"cached_tokens": 0, "reasoning_tokens": 0, "incomplete": None}

    # -- scripting -----------------------------------------------------------------------

    def reply(self, text: ReplyText, model: str | None, contains: str | None) -> None:
        with self._lock:
            self._rules.append(_Rule(model, contains, text=text))

    def reply_tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        model: str | None,
        contains: str | None,
        until_tool_output: bool | int = False,
    ) -> None:
        with self._lock:
            self._rules.append(
                _Rule(
                    model,
                    contains,
                    tool=(name, dict(arguments)),
                    until_tool_output=until_tool_output,
                )
            )

    # -- serving -------------------------------------------------------------------------

    def models(self, request: web.Request) -> web.Response | None:
        """``GET /v1/models`` and ``GET /v1/models/{id}``; None for any other request."""
        if request.method != "GET":
            return None
        if request.path == "/v1/models":
            known = self.known_models
            ids = sorted(known) if known is not None else list(DEFAULT_MODELS)
            return web.json_response({"object": "list", "data": [_model_object(m) for m in ids]})
        if request.path.startswith("/v1/models/"):
            model = request.path.removeprefix("/v1/models/")
            known = self.known_models
            if known is not None and model not in known:
                return model_not_found(model)
            return web.json_response(_model_object(model))
        return None

    def check(self, endpoint: str, body: Any) -> Call | web.Response:
        """The request's model and texts, or the 400 that rejects it before it is served."""
        if not isinstance(body, dict):
            return not_an_object()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error(
                400, "you must provide a model parameter", "invalid_request_error", param="model"
            )
        if body.get("stream"):
            return error(
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
            return error(
                self.response_format_status,
                f"response_format of type {response_format.get('type')} is not supported.",
                "invalid_request_error",
                "unsupported_parameter",
                "response_format",
            )
        if endpoint == "chat" and not isinstance(body.get("messages"), list):
            return missing("messages")
        if endpoint == "chat" and bad_metadata(body.get("metadata")):
            return invalid_metadata()

        if endpoint == "chat":
            user_text, texts = _chat_texts(body)
        elif endpoint == "responses":
            user_text, texts = _responses_texts(body)
        else:
            texts = _embedding_inputs(body)
            user_text = "\n".join(texts)
        return Call(endpoint, model, user_text, texts)

    def answer(self, call: Call, path: str, body: dict[str, Any]) -> Answer | web.Response:
        """The reply to a checked request (keeping it when it asks to be stored)."""
        model, texts = call.model, call.texts
        known = self.known_models
        if known is not None and model not in known:
            return model_not_found(model)
        request_digest = digest(path, body)
        if call.endpoint == "embeddings":
            payload = _embeddings_payload(body, model, texts)
        else:
            try:
                reply = self._pick_reply(model, call.user_text, body)
            except _ReplyError as exc:
                return error(500, str(exc), "server_error")
            if call.endpoint == "chat":
                answered = self.chat_snapshots.get(model, model)
                payload = _chat_payload(body, answered, reply, texts, request_digest, self.details)
                if body.get("store") is True:
                    self._store(path, body, payload)
            else:
                payload = _responses_payload(
                    body, model, reply, texts, request_digest, self.details
                )
        return Answer(payload, request_digest)

    def answer_line(self, path: str, body: Any) -> web.Response:
        """A batch line's reply: the live endpoint's, without the transport."""
        call = self.check(MODEL_ENDPOINTS[path], body)
        if isinstance(call, web.Response):
            return call
        answer = self.answer(call, path, body)
        if isinstance(answer, web.Response):
            return answer
        return answer.response(answer.text)

    def _pick_reply(self, model: str, user_text: str, body: dict[str, Any]) -> _Reply:
        with self._lock:
            rules = list(reversed(self._rules))
        for rule in rules:
            if not rule.matches(model, user_text):
                continue
            if rule.until_tool_output and tool_outputs(body) >= int(rule.until_tool_output):
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


def fake_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Unit vector from a signed hashed bag of lower-cased words.

    Texts sharing words get a high cosine similarity, identical texts exactly the same
    vector, unrelated texts roughly orthogonal ones; no model and no randomness needed.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        word_digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(word_digest[:4], "little") % dimensions
        vector[index] += 1.0 if word_digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # no words: any fixed unit vector keeps cosine well-defined
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def tool_outputs(body: dict[str, Any]) -> int:
    """How many tools' outputs a request carries: chat ``tool`` messages and Responses
    ``function_call_output`` input items."""
    messages = body.get("messages")
    input_ = body.get("input")
    items = [*(messages if isinstance(messages, list) else [])]
    items += input_ if isinstance(input_, list) else []
    return sum(
        isinstance(item, dict)
        and (item.get("role") == "tool" or item.get("type") == "function_call_output")
        for item in items
    )


def _chat_texts(body: dict[str, Any]) -> tuple[str, list[str]]:
    """(last user message text, every message's text) of a chat request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    texts = [content_text(m.get("content")) for m in messages]
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
        text = content_text(item.get("content"))
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


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "fake-openai"}


def _completion_tokens(reply: _Reply) -> int:
    if reply.tool_name is not None:
        return count_tokens(f"{reply.tool_name} {reply.tool_arguments}")
    return count_tokens(reply.text or "")


def _chat_payload(
    body: dict[str, Any],
    model: str,
    reply: _Reply,
    texts: list[str],
    digest: str,
    details: dict[str, Any],
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
    if details["incomplete"] is not None:
        finish = "content_filter" if details["incomplete"] == "content_filter" else "length"
    prompt = sum(count_tokens(t) for t in texts)
    reasoning = details["reasoning_tokens"] * n
    completion = _completion_tokens(reply) * n + reasoning
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
            "prompt_tokens_details": {
                "cached_tokens": min(details["cached_tokens"], prompt),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fakeopenai",
    }


def _responses_payload(
    body: dict[str, Any],
    model: str,
    reply: _Reply,
    texts: list[str],
    digest: str,
    details: dict[str, Any],
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
    reasoning = details["reasoning_tokens"]
    completion = _completion_tokens(reply) + reasoning
    output = [item]
    if reasoning:  # what a reasoning model puts first: its (summarised) reasoning
        summary = {"type": "summary_text", "text": f"thought for {reasoning} tokens"}
        output.insert(0, {"type": "reasoning", "id": f"rs_{digest}", "summary": [summary]})
    incomplete = details["incomplete"]
    payload: dict[str, Any] = {
        "id": f"resp_{digest}",
        "object": "response",
        "created_at": CREATED,
        "completed_at": CREATED,
        "status": "completed" if incomplete is None else "incomplete",
        "background": False,
        "error": None,
        "incomplete_details": None if incomplete is None else {"reason": incomplete},
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output,
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
            "input_tokens_details": {
                "cached_tokens": min(details["cached_tokens"], prompt),
                "cache_write_tokens": 0,
            },
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
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
