"""The Files API (``/v1/files*``), in memory: what batches and fine-tuning jobs read.

The Files API knows purposes, not formats: what a ``batch`` or ``fine-tune`` upload must
look like is its reader's business, so those families register an upload check here
(``Files.checks``) instead of this module importing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aiohttp import web

from .common import CREATED, error, missing, no_such

if TYPE_CHECKING:
    from .common import Ledger

#: What ``POST /v1/files`` accepts as ``purpose`` (spec ``CreateFileRequest``).
_FILE_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: An upload check: (filename, data) -> the 400 that refuses the file, or None.
UploadCheck: TypeAlias = Callable[[str, bytes], web.Response | None]


@dataclass
class File:
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


class Files:
    """Upload, list, retrieve, delete and download files."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = ledger.lock
        self._files: dict[str, File] = {}
        #: Per purpose, what an upload must pass besides the purpose itself.
        self.checks: dict[str, UploadCheck] = {}

    def reset(self) -> None:
        """Forget every file. Caller holds the lock."""
        self._files.clear()

    def add(self, filename: str, purpose: str, data: bytes) -> File:
        file = File(self._ledger.new_id("file-fake"), filename, purpose, data)
        with self._lock:
            self._files[file.id] = file
        return file

    def get(self, file_id: str) -> File | None:
        with self._lock:
            return self._files.get(file_id)

    async def route(self, request: web.Request, raw: bytes, body: Any) -> web.Response | None:
        """``/v1/files*``; None for any other path."""
        parts = request.path.split("/")[2:]  # "", "v1", "files", ...
        if parts[:1] != ["files"] or "" in parts or len(parts) > 3:
            return None
        method, rest = request.method, parts[1:]
        if method == "POST" and not rest:
            return self._upload(request, raw)
        if method == "GET" and not rest:
            return self._list(request.query.get("purpose"))
        if len(rest) == 1 and method in ("GET", "DELETE"):
            return self._object(rest[0], delete=method == "DELETE")
        if method == "GET" and len(rest) == 2 and rest[1] == "content":
            return self._content(rest[0])
        return None

    def _upload(self, request: web.Request, raw: bytes) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return error(
                400, "Files must be uploaded as multipart/form-data.", "invalid_request_error"
            )
        fields = _multipart_fields(content_type, raw)
        filename, data = fields.get("file", (None, b""))
        if filename is None:
            return missing("file")
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose not in _FILE_PURPOSES:
            return error(
                400,
                f"Invalid value for 'purpose': {purpose!r}. "
                f"Expected one of {list(_FILE_PURPOSES)}.",
                "invalid_request_error",
                "invalid_value",
                "purpose",
            )
        check = self.checks.get(purpose)
        refusal = None if check is None else check(filename, data)
        if refusal is not None:
            return refusal
        return web.json_response(self.add(filename, purpose, data).to_json())

    def _list(self, purpose: str | None) -> web.Response:
        with self._lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        data = [f.to_json() for f in reversed(files)]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    def _object(self, file_id: str, *, delete: bool) -> web.Response:
        file = self.get(file_id)
        if file is None:
            return no_such("File", file_id)
        if not delete:
            return web.json_response(file.to_json())
        with self._lock:
            self._files.pop(file_id, None)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    def _content(self, file_id: str) -> web.Response:
        file = self.get(file_id)
        if file is None:
            return no_such("File", file_id)
        return web.Response(body=file.data, content_type="application/octet-stream")


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
