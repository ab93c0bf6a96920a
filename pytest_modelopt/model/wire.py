"""OpenAI's wire formats: endpoint paths, response parsers, and the SDK's transports.

Shared by the in-process client and the helper process that sends declared requests,
which needs these and nothing else of the client.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .types import ModelCallError, Usage

ENDPOINTS = {"chat": "/chat/completions", "responses": "/responses", "embeddings": "/embeddings"}


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


PARSERS = {"chat": parse_chat, "responses": parse_responses, "embeddings": parse_embeddings}


def async_http_client(transport: str) -> Any:
    """The SDK's aiohttp-backed client, or None for its default httpx one.

    openai[aiohttp] spends about a third less CPU than httpx on each request (measured in
    docs/benchmarks.md); ``auto`` takes it whenever the SDK and aiohttp provide it.
    """
    if transport == "httpx":
        return None
    import openai  # openai: only when a transport is chosen

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


def response_class() -> type[Any]:
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
