"""What every API family of the fake shares, so that none of them imports another.

The families answer in one voice because OpenAI's does: one error shape (which the SDK
turns into its typed exceptions), one cursor-page shape, one metadata rule. Nothing in a
reply may depend on the clock or on chance, so ids are content hashes or come from one
counter, and timestamps count up from ``CREATED``. The counter and the lock are one for
the whole server: ids keep their order across families, and ``reset()`` clears every
family at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Fixed ``created`` / ``created_at`` timestamp: replies must not depend on the clock.
CREATED: Final = 1_700_000_000
#: The model endpoints (path -> endpoint kind), live and in batch files alike.
MODEL_ENDPOINTS: Final = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}


class Ledger:
    """The lock every family takes around its state, and the counter behind its ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._serial = 0

    def new_id(self, prefix: str) -> str:
        """``<prefix><serial>``: ids count up in creation order and survive ``reset()``."""
        with self.lock:
            self._serial += 1
            return f"{prefix}{self._serial:06d}"


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def digest(path: str, body: Any) -> str:
    """Content hash for ids: identical requests get identical ids, nothing is random."""
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def content_text(content: Any) -> str:
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


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Errors in OpenAI's shape, which the SDK turns into its typed exceptions."""
    return web.json_response(
        error_body(message, type_, code, param), status=status, headers=headers
    )


def unparsable() -> web.Response:
    """The 400 for a body that is not JSON at all."""
    return error(400, "We could not parse the JSON body of your request.", "invalid_request_error")


def not_an_object() -> web.Response:
    """The 400 for a JSON body that is not an object."""
    return error(400, "The request body must be a JSON object.", "invalid_request_error")


def missing(name: str) -> web.Response:
    """The 400 for a required parameter the request left out."""
    return error(
        400,
        f"Missing required parameter: '{name}'.",
        "invalid_request_error",
        "missing_required_parameter",
        name,
    )


def server_error() -> web.Response:
    """OpenAI's generic 500."""
    return error(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )


def injected(status: int, message: str, code: str | None) -> web.Response:
    """An error a test scripted by status: a server error from 500 up, else a client one."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error(status, message, kind, code)


def model_not_found(model: str) -> web.Response:
    return error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def no_such(kind: str, object_id: str) -> web.Response:
    return error(404, f"No such {kind}: '{object_id}'", "invalid_request_error")


def bad_metadata(metadata: Any) -> bool:
    """Whether ``metadata`` breaks OpenAI's rule: at most 16 string pairs, keys <= 64 and
    values <= 512 characters (None is fine)."""
    return metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())
    )


def invalid_metadata() -> web.Response:
    return error(
        400,
        "Invalid 'metadata': at most 16 string pairs, keys <= 64 and values <= 512 characters.",
        "invalid_request_error",
        "invalid_value",
        "metadata",
    )


def metadata_filter(query: Mapping[str, str]) -> dict[str, str]:
    """The ``metadata[k]=v`` pairs of a list request's query."""
    return {
        key[len("metadata[") : -1]: value
        for key, value in query.items()
        if key.startswith("metadata[") and key.endswith("]")
    }


def cursor_page(
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
