"""Stored chat completions: ``GET /v1/chat/completions``, ``.../{id}``, ``.../{id}/messages``,
update (metadata only) and delete.

Chat completions sent with ``store: true`` are kept here (the inference family hands each
one over as it answers it) and served back as OpenAI lists them. Completion ids are
content hashes, so a repeated request is kept under a salted id: stored completions, like
OpenAI's, never share one. Most compatible servers (vLLM, Ollama) have no such API, which
is what ``stored_completions_enabled = False`` is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

from aiohttp import web

from .common import (
    bad_metadata,
    content_text,
    cursor_page,
    digest,
    error,
    injected,
    invalid_metadata,
    metadata_filter,
    missing,
    unparsable,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .common import Ledger

#: The stored-completions requests a ``stored_completions_fault`` can aim at.
StoredAction: TypeAlias = Literal["list", "retrieve", "messages", "update", "delete"]


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


class StoredCompletions:
    """Keep ``store: true`` completions; list, retrieve, update and delete them."""

    def __init__(self, ledger: Ledger) -> None:
        self._lock = ledger.lock
        self._stored: dict[str, _StoredCompletion] = {}  # insertion order: oldest first
        self._faults: list[tuple[str | None, int, str, str | None]] = []

    def reset(self) -> None:
        """Forget every completion and fault. Caller holds the lock."""
        self._stored.clear()
        self._faults.clear()

    @property
    def completions(self) -> list[dict[str, Any]]:
        """Every stored chat completion as the API shows it, oldest first."""
        with self._lock:
            return [stored.to_json() for stored in self._stored.values()]

    def fault(
        self, status: int, message: str, code: str | None, times: int, action: StoredAction | None
    ) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        if action is not None and action not in get_args(StoredAction):
            raise ValueError(f"unknown action {action!r}; expected one of {get_args(StoredAction)}")
        with self._lock:
            self._faults.extend([(action, status, message, code)] * times)

    def keep(self, path: str, body: dict[str, Any], payload: dict[str, Any]) -> None:
        """Keep a ``store: true`` completion, salting ``payload["id"]`` if it is taken."""
        metadata = body.get("metadata")
        with self._lock:
            salt = 0
            while payload["id"] in self._stored:
                salt += 1
                payload["id"] = f"chatcmpl-{digest(path, [body, salt])}"
            self._stored[payload["id"]] = _StoredCompletion(
                payload=json.loads(json.dumps(payload)),
                metadata=dict(metadata) if isinstance(metadata, dict) else {},
                messages=_store_messages(payload["id"], body["messages"]),
                requested_model=str(body["model"]),
            )

    async def route(self, request: web.Request, raw: bytes, body: Any) -> web.Response | None:
        """``GET /v1/chat/completions``, ``GET|POST|DELETE /v1/chat/completions/{id}`` and
        ``GET /v1/chat/completions/{id}/messages``; None for anything else (creation)."""
        if request.path != "/v1/chat/completions" and not request.path.startswith(
            "/v1/chat/completions/"
        ):
            return None
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
            fault = next((f for f in self._faults if f[0] in (None, action)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            _, status, message, code = fault
            return injected(status, message, code)
        order = query.get("order", "asc")
        if action in ("list", "messages") and order not in ("asc", "desc"):
            return error(
                400,
                f"Invalid value for 'order': {order!r}. Expected one of ['asc', 'desc'].",
                "invalid_request_error",
                "invalid_value",
                "order",
            )
        if action == "list":
            return self._list(query, order)
        with self._lock:
            stored = self._stored.get(rest[0])
        if stored is None:
            return error(
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
                cursor_page(list(messages), query.get("after"), query.get("limit"), 20)
            )
        if action == "delete":
            with self._lock:
                self._stored.pop(stored.id, None)
            return web.json_response(
                {"object": "chat.completion.deleted", "id": stored.id, "deleted": True}
            )
        return self._update(stored, raw, body)

    def _list(self, query: Mapping[str, str], order: str) -> web.Response:
        """Stored completions, oldest first (``order=asc``), with every ``metadata[k]=v``
        pair and the ``model`` asked for (the request's model or its snapshot: OpenAI does
        not document which it matches, so clients must cope with either)."""
        wanted = metadata_filter(query)
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
        return web.json_response(cursor_page(items, query.get("after"), query.get("limit"), 20))

    def _update(self, stored: _StoredCompletion, raw: bytes, body: Any) -> web.Response:
        """Replace the metadata, the only field OpenAI lets a client change."""
        if raw and body is None:
            return unparsable()
        if not isinstance(body, dict) or "metadata" not in body:
            return missing("metadata")
        extra = sorted(set(body) - {"metadata"})
        if extra:
            return error(
                400,
                f"Unrecognized request argument supplied: {extra[0]}. Only 'metadata' can be "
                "modified.",
                "invalid_request_error",
                "unknown_parameter",
                extra[0],
            )
        metadata = body["metadata"]
        if bad_metadata(metadata):
            return invalid_metadata()
        with self._lock:
            stored.metadata = dict(metadata or {})
            return web.json_response(stored.to_json())


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
                "content": content_text(content) if content is not None else None,
                "refusal": None,
                "name": message.get("name"),
                "content_parts": parts or None,
            }
        )
    return out
