"""The Batch API (``/v1/batches*``): a per-retrieval state machine over the Files API.

It is here so that batch submission can be tested end to end, in memory;
``batches_enabled = False`` turns it and the Files API off, as on a compatible server
without them.

A real batch finishes whenever OpenAI gets to it; here each ``GET /v1/batches/{id}`` moves
it one step, validating -> in_progress -> finalizing -> completed, in ``batch_steps``
retrievals, so a test decides how many polls a client sees. On completion every line is
answered by the function the server hands in (the live endpoint's code without its
transport: rules, reply callables, ``known_models`` and ``response_formats`` apply,
faults and latency do not), and the output and error files are written. A line whose
url differs from the batch's endpoint, or whose model differs from line 1's, makes the
batch ``failed``, as on OpenAI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aiohttp import web

from .common import (
    CREATED,
    MODEL_ENDPOINTS,
    bad_metadata,
    digest,
    error,
    invalid_metadata,
    missing,
    no_such,
    not_an_object,
    server_error,
    unparsable,
)

if TYPE_CHECKING:
    from .common import Ledger
    from .files import Files

#: Answers one batch line: (url, body) -> the response the live endpoint would give.
AnswerLine: TypeAlias = Callable[[str, Any], web.Response]

#: Statuses after which a batch never changes again.
_BATCH_TERMINAL: Final = frozenset({"completed", "failed", "expired", "cancelled"})
#: A batch expires this long after it was created (``completion_window`` "24h").
_BATCH_WINDOW_S: Final = 24 * 3600


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


class Batches:
    """Create, list, retrieve (one step each) and cancel batches."""

    def __init__(self, ledger: Ledger, files: Files, answer: AnswerLine) -> None:
        self._ledger = ledger
        self._lock = ledger.lock
        self._files = files
        self._answer = answer
        self._batches: dict[str, _Batch] = {}
        self.batch_steps = 3
        self.batch_retrieve_errors = 0
        files.checks["batch"] = _check_upload

    def reset(self) -> None:
        """Forget every batch and restore the knobs. Caller holds the lock."""
        self._batches.clear()
        self.batch_steps = 3
        self.batch_retrieve_errors = 0

    async def route(self, request: web.Request, raw: bytes, body: Any) -> web.Response | None:
        """``/v1/batches*``; None for any other path."""
        parts = request.path.split("/")[2:]  # "", "v1", "batches", ...
        if parts[:1] != ["batches"] or "" in parts or len(parts) > 3:
            return None
        method, rest = request.method, parts[1:]
        if method == "POST" and not rest:
            if raw and body is None:
                return unparsable()
            return self._create(body)
        if method == "GET" and not rest:
            return self._list(request.query.get("limit"), request.query.get("after"))
        if method == "GET" and len(rest) == 1:
            return self._retrieve(rest[0])
        if method == "POST" and len(rest) == 2 and rest[1] == "cancel":
            return self._cancel(rest[0])
        return None

    def _create(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return not_an_object()
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str):
                return missing(name)
        endpoint = body["endpoint"]
        if endpoint not in MODEL_ENDPOINTS:
            return error(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}. FakeOpenAI batches support "
                f"{', '.join(MODEL_ENDPOINTS)}.",
                "invalid_request_error",
                "invalid_value",
                "endpoint",
            )
        if body["completion_window"] != "24h":
            return error(
                400,
                f"Invalid value for 'completion_window': {body['completion_window']!r}. "
                "Supported values are: '24h'.",
                "invalid_request_error",
                "invalid_value",
                "completion_window",
            )
        metadata = body.get("metadata")
        if bad_metadata(metadata):
            return invalid_metadata()
        file = self._files.get(body["input_file_id"])
        if file is None or file.purpose != "batch":
            why = "does not exist" if file is None else f"has purpose {file.purpose!r}"
            return error(
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
            id=self._ledger.new_id("batch_fake"),
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
            self._finish(batch)
        return web.json_response(batch.to_json())

    def _list(self, limit: str | None, after: str | None) -> web.Response:
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

    def _retrieve(self, batch_id: str) -> web.Response:
        with self._lock:
            batch = self._batches.get(batch_id)
            outage = self.batch_retrieve_errors > 0
            if outage:
                self.batch_retrieve_errors -= 1
        if outage:
            return server_error()
        if batch is None:
            return no_such("Batch", batch_id)
        if batch.status not in _BATCH_TERMINAL:
            batch.polls += 1
            self._step(batch)
        return web.json_response(batch.to_json())

    def _step(self, batch: _Batch) -> None:
        """One retrieval's worth of progress."""
        if batch.status == "cancelling":
            batch.stamp("cancelled")
            return
        final = batch.polls >= self.batch_steps
        if batch.problems or final:
            self._finish(batch)
        elif batch.polls >= 2 and batch.polls == self.batch_steps - 1:
            batch.stamp("finalizing")
        elif batch.status == "validating":
            batch.stamp("in_progress")

    def _finish(self, batch: _Batch) -> None:
        """Fail it (problems found at creation) or answer every line and write the files."""
        if batch.problems:
            batch.stamp("failed")
            return
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        usage = {"input_tokens": 0, "output_tokens": 0}
        for line in batch.lines:
            path, body = line["url"], line["body"]
            response = self._answer(path, body)
            payload = json.loads(response.text or "null")
            request_id = response.headers.get("x-request-id") or f"req_{digest(path, body)}"
            item = {
                "id": f"batch_req_{digest(batch.id, line['custom_id'])}",
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
            batch.output_file_id = self._files.add(
                f"{batch.id}_output.jsonl", "batch_output", _jsonl(outputs)
            ).id
        if errors:
            batch.error_file_id = self._files.add(
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

    def _cancel(self, batch_id: str) -> web.Response:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return no_such("Batch", batch_id)
        if batch.status in _BATCH_TERMINAL:
            return error(
                400,
                f"Cannot cancel a batch with status '{batch.status}'.",
                "invalid_request_error",
            )
        if batch.status != "cancelling":
            batch.stamp("cancelling")
        return web.json_response(batch.to_json())


def _check_upload(filename: str, data: bytes) -> web.Response | None:
    """A ``purpose="batch"`` upload is refused at once when a line is bad, naming it."""
    problem = _batch_file_problem(data)
    if problem is None:
        return None
    return error(
        400,
        f"Invalid batch input file {filename!r}: {problem}.",
        "invalid_request_error",
        "invalid_batch_file",
        "file",
    )


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
        if item.get("url") not in MODEL_ENDPOINTS:
            return (
                f"{where}: 'url' must be one of {', '.join(MODEL_ENDPOINTS)}, "
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
