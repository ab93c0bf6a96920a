"""Send a run's model calls through OpenAI's Batch API (half price), then replay them.

The flow behind ``--eval-batch``: every request a run will make is declared as a
:class:`BatchRequest` whose ``custom_id`` is its response-cache key. :func:`submit`
uploads them (``purpose="batch"``) and creates the batches, :func:`poll` waits for each
to finish, and :func:`collect` downloads the output and writes one
:class:`~pytest_modelopt.cache.CacheEntry` per answered request, so the tests then replay
every call from the cache without a live request. A nightly job that cannot wait saves a
manifest with :func:`save_pending`; a later job (``--eval-batch=collect``) reads it back
with :func:`load_pending`, polls and collects.

An OpenAI batch holds one endpoint and, per the Batch guide, one model, with at most
50,000 requests (50,000 embedding inputs) and 200 MB: :func:`submit` creates one batch
per (endpoint, model) and splits bigger groups, and returns every batch id.

The SDK is used through the :class:`~pytest_modelopt.client.ModelClient` (its key,
``base_url``, ``timeout`` and ``max_retries``); ``openai`` is imported lazily by it.
Errors are :class:`BatchError`: one line saying what failed and what to do, never the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..images import ImageError
from ..images import inline as inline_images
from ..model.cache import CacheEntry, cache_key
from ..model.failures import backoff, classify
from ..model.wire import ENDPOINTS, parse_chat, parse_embeddings, parse_responses
from ..secrets import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    from openai import OpenAI
    from openai.types import Batch

    from ..model.cache import ResponseCache
    from ..model.client import ModelClient
    from .generator import Job

__all__ = [
    "TERMINAL_STATUSES",
    "BatchError",
    "BatchRequest",
    "BatchStatus",
    "batch_lines",
    "cancel",
    "collect",
    "load_pending",
    "poll",
    "save_pending",
    "submit",
]

#: Statuses after which a batch never changes.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
MANIFEST_VERSION = 1
# OpenAI's limits per batch input file (Batch guide), with room to spare on the size.
_MAX_LINES = 50_000
_MAX_EMBEDDING_INPUTS = 50_000
_MAX_BYTES = 190 * 1024 * 1024
#: Polls in a row that may fail transiently (5xx, connection) before poll() gives up.
_MAX_POLL_FAILURES = 5
_NO_BATCH_API = (404, 405, 501)
PARSERS = {
    ENDPOINTS["chat"]: parse_chat,
    ENDPOINTS["responses"]: parse_responses,
    ENDPOINTS["embeddings"]: parse_embeddings,
}
_MANIFEST_GLOB = "batch-*.json"


class BatchError(Exception):
    """A Batch API step that failed; ``str()`` is one line: what failed and what to do.

    ``batch_ids``: batches already created when :func:`submit` failed part-way (they
    will run and be billed: save them with :func:`save_pending` or cancel them).
    """

    def __init__(self, message: str, *, batch_ids: Sequence[str] = ()) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", message).strip())
        self.batch_ids = tuple(batch_ids)


@dataclass(frozen=True)
class BatchRequest:
    """One request to send in a batch.

    ``custom_id`` is the response-cache key of the request, so its answer is stored where
    a replay looks for it: build requests with :meth:`for_call`, which computes it.
    """

    custom_id: str
    endpoint: str  # "/chat/completions" | "/responses" | "/embeddings" (client.ENDPOINTS)
    body: dict[str, Any]  # the full request body, model included
    sample: int = 0

    def __post_init__(self) -> None:
        if self.endpoint not in PARSERS:
            raise BatchError(
                f"cannot batch a request to {self.endpoint!r}: the endpoint must be one of "
                f"{', '.join(PARSERS)}"
            )
        if not isinstance(self.custom_id, str) or not self.custom_id:
            raise BatchError("a batch request needs a non-empty custom_id (its cache key)")

    @classmethod
    def for_call(cls, endpoint: str, body: Mapping[str, Any], sample: int = 0) -> BatchRequest:
        """The request keyed exactly as ``ModelClient`` keys it in the response cache.

        ``body`` must be the body as sent, i.e. after ``ModelClient.prepare``.
        """
        return cls(cache_key(endpoint, body, sample), endpoint, dict(body), sample)

    @property
    def model(self) -> str:
        return str(self.body.get("model") or "")

    @property
    def url(self) -> str:
        """The ``url`` of its batch line (and the batch's ``endpoint``)."""
        return "/v1" + self.endpoint


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands; ``errors`` explains a ``failed`` batch (one per problem)."""

    id: str
    status: str
    total: int
    completed: int
    failed: int
    output_file_id: str | None
    error_file_id: str | None
    errors: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def __str__(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.id}: {self.status}, {self.completed}/{self.total} done{failed}"


# -- the input file ------------------------------------------------------------------------


def _unique(requests: Sequence[BatchRequest]) -> list[BatchRequest]:
    """Requests in order, each custom_id once (identical duplicates are one request)."""
    seen: dict[str, BatchRequest] = {}
    for request in requests:
        prior = seen.setdefault(request.custom_id, request)
        if prior is not request and prior != request:
            raise BatchError(
                f"two different requests share custom_id {request.custom_id!r}: build them "
                "with BatchRequest.for_call so each id is its request's cache key"
            )
    return list(seen.values())


def _line(request: BatchRequest) -> bytes:
    line = {"custom_id": request.custom_id, "method": "POST", "url": request.url}
    try:  # the file sent holds the images' bytes; the request kept holds their references
        body = inline_images(request.body)
    except ImageError as exc:
        raise BatchError(f"request {request.custom_id}: {exc}") from None
    try:
        text = json.dumps({**line, "body": body}, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise BatchError(
            f"the body of request {request.custom_id} is not JSON ({exc}): pass only JSON "
            "values (str, numbers, lists, dicts) as request parameters"
        ) from None
    return (text + "\n").encode("utf-8")


def batch_lines(requests: Sequence[BatchRequest]) -> bytes:
    """The JSONL input file: ``{"custom_id", "method": "POST", "url": "/v1/...", "body"}``
    per request, one line each, in order; a request repeated with the same id is sent once.
    """
    return b"".join(_line(request) for request in _unique(requests))


def _weight(request: BatchRequest) -> int:
    """Embedding inputs a request carries (OpenAI caps them per batch); 0 for others."""
    if request.endpoint != ENDPOINTS["embeddings"]:
        return 0
    inputs = request.body.get("input")
    is_texts = isinstance(inputs, list) and not all(isinstance(i, int) for i in inputs)
    return len(inputs) if isinstance(inputs, list) and is_texts else 1


def _chunks(requests: list[BatchRequest]) -> Iterator[list[BatchRequest]]:
    """Split one (endpoint, model) group into files within OpenAI's per-batch limits."""
    chunk: list[BatchRequest] = []
    size = inputs = 0
    for request in requests:
        line_size, weight = len(_line(request)), _weight(request)
        if chunk and (
            len(chunk) >= _MAX_LINES
            or size + line_size > _MAX_BYTES
            or inputs + weight > _MAX_EMBEDDING_INPUTS
        ):
            yield chunk
            chunk, size, inputs = [], 0, 0
        chunk.append(request)
        size += line_size
        inputs += weight
    if chunk:
        yield chunk


# -- talking to the API --------------------------------------------------------------------


def _sdk(client: ModelClient, *, retries: bool = True) -> OpenAI:
    sdk = client.sdk()
    return sdk.with_options(
        timeout=client.timeout, max_retries=client.max_retries if retries else 0
    )


def _error(
    client: ModelClient,
    exc: Exception,
    doing: str,
    where: str,
    *,
    submitted: Sequence[str] = (),
) -> BatchError:
    """One line for an SDK failure: what failed, why, and what to do; the key redacted."""
    failure = classify(exc)
    why = redact(failure.message, client.secrets()).rstrip(". ")
    if failure.status in _NO_BATCH_API and where in ("POST /v1/files", "POST /v1/batches"):
        message = (
            f"this server has no Batch API ({failure.status} on {where}): run without --eval-batch"
        )
    elif failure.status == 404:
        message = (
            f"{doing} failed: {why} (on {where}): it was created with another API key, "
            "project or server, or this server has no Batch API; check OPENAI_API_KEY "
            "and OPENAI_BASE_URL"
        )
    elif failure.kind == "auth":
        message = f"{doing} failed: {why}"
    elif failure.kind == "bad_request":
        message = f"{doing} was rejected: {why}: fix it, or run without --eval-batch"
    elif failure.retryable:
        message = f"{doing} failed ({failure.kind}): {why}: try again later"
    else:
        message = f"{doing} failed: {why}"
    if submitted:
        message += (
            f"; already submitted (and billed when they run): {', '.join(submitted)}: "
            "save them for --eval-batch=collect or cancel them"
        )
    return BatchError(message, batch_ids=submitted)


def _status(batch: Batch) -> BatchStatus:
    counts = batch.request_counts
    problems: list[str] = []
    for problem in (batch.errors.data if batch.errors else None) or []:
        line = f"line {problem.line}: " if problem.line is not None else ""
        problems.append(f"{line}{problem.message or problem.code or 'unknown error'}")
    return BatchStatus(
        id=batch.id,
        status=str(batch.status),
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_file_id=batch.output_file_id or None,
        error_file_id=batch.error_file_id or None,
        errors=tuple(problems),
    )


def _create_batch(
    client: ModelClient,
    file_id: str,
    url: str,
    metadata: Mapping[str, str] | None,
    submitted: Sequence[str],
) -> str:
    """Create one batch. Not blindly retried: a retry after a lost answer could bill twice;
    only a 429 or a failure to connect (the request never ran) is tried again."""
    sdk = _sdk(client, retries=False)
    attempt = 0
    while True:
        try:
            if metadata:
                batch = sdk.batches.create(
                    input_file_id=file_id,
                    endpoint=url,  # type: ignore[arg-type]  # one of the three we allow
                    completion_window="24h",
                    metadata=dict(metadata),
                )
            else:
                batch = sdk.batches.create(
                    input_file_id=file_id,
                    endpoint=url,  # type: ignore[arg-type]
                    completion_window="24h",
                )
            return batch.id
        except Exception as exc:
            failure = classify(exc)
            never_sent = type(exc.__cause__).__name__ == "ConnectError"  # httpx(2)
            if not (failure.kind == "rate_limit" or never_sent) or attempt >= client.max_retries:
                raise _error(
                    client, exc, "creating the batch", "POST /v1/batches", submitted=submitted
                ) from None
            time.sleep(backoff(attempt, failure.retry_after))
            attempt += 1


def submit(
    client: ModelClient,
    requests: Sequence[BatchRequest],
    *,
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """Upload the requests and create their batches; the batch ids, in request order.

    One batch per (endpoint, model), split further at OpenAI's per-batch limits; an empty
    ``requests`` submits nothing and returns ``[]``. ``metadata`` (at most 16 string pairs)
    goes on every batch. When a later batch fails, the :class:`BatchError` carries the ids
    already created in ``batch_ids``.
    """
    groups: dict[tuple[str, str], list[BatchRequest]] = {}
    for request in _unique(requests):
        groups.setdefault((request.endpoint, request.model), []).append(request)
    sdk = _sdk(client)
    ids: list[str] = []
    for (endpoint, model), group in groups.items():
        for number, chunk in enumerate(_chunks(group), 1):
            name = f"modelopt-{_slug(endpoint)}-{_slug(model)}-{number}.jsonl"
            try:
                uploaded = sdk.files.create(
                    file=(name, batch_lines(chunk), "application/jsonl"), purpose="batch"
                )
            except Exception as exc:
                doing = f"uploading {len(chunk)} {endpoint} request(s) for {model or '?'}"
                raise _error(client, exc, doing, "POST /v1/files", submitted=ids) from None
            ids.append(_create_batch(client, uploaded.id, chunk[0].url, metadata, ids))
    return ids


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-") or "x"


def poll(
    client: ModelClient,
    batch_id: str,
    *,
    interval: float = 30.0,
    timeout: float | None = None,
    on_progress: Callable[[BatchStatus], None] | None = None,
) -> BatchStatus:
    """Retrieve the batch every ``interval`` s until it reaches a terminal status.

    ``on_progress`` sees every retrieved status (the terminal one too). A few transient
    failures in a row (5xx, connection) are ridden out; ``timeout`` (seconds, None: no
    limit) raises a :class:`BatchError` naming the batch, which keeps running.
    """
    sdk = _sdk(client)
    deadline = None if timeout is None else time.monotonic() + timeout
    current: BatchStatus | None = None
    failures = 0
    while True:
        try:
            current = _status(sdk.batches.retrieve(batch_id))
            failures = 0
        except Exception as exc:
            failures += 1
            if not classify(exc).retryable or failures > _MAX_POLL_FAILURES:
                doing = f"checking batch {batch_id}"
                raise _error(client, exc, doing, f"GET /v1/batches/{batch_id}") from None
        else:
            if on_progress is not None:
                on_progress(current)
            if current.done:
                return current
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            state = current.status if current is not None else "unknown"
            raise BatchError(
                f"batch {batch_id} is still {state} after {timeout:g} s: it keeps running; "
                "collect it later with --eval-batch=collect"
            )
        time.sleep(max(0.0, interval if left is None else min(interval, left)))


def cancel(client: ModelClient, batch_id: str) -> BatchStatus:
    """Ask OpenAI to cancel a batch; it goes through ``cancelling`` to ``cancelled``
    (work already done stays in its output file and is billed)."""
    try:
        return _status(_sdk(client).batches.cancel(batch_id))
    except Exception as exc:
        doing = f"cancelling batch {batch_id}"
        raise _error(client, exc, doing, f"POST /v1/batches/{batch_id}/cancel") from None


# -- results -------------------------------------------------------------------------------


def _outcome(line: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(response body, None) for an answered line, else (None, why it failed)."""
    error = line.get("error")
    if isinstance(error, dict) and error:
        code = error.get("code") or "error"
        return None, f"{code}: {error.get('message') or 'no message'}"
    response = line.get("response")
    if not isinstance(response, dict):
        return None, "the line has neither a response nor an error"
    status, body = response.get("status_code"), response.get("body")
    if not isinstance(status, int) or not 200 <= status < 300:
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        return None, f"HTTP {status}: {message or json.dumps(body)[:200]}"
    if not isinstance(body, dict):
        return None, "the response has no JSON body"
    return body, None


def _cacheable(
    line: Mapping[str, Any], request: BatchRequest | None
) -> tuple[BatchRequest, dict[str, Any]] | str:
    """The request and its response body to cache, or why this line cannot be cached."""
    if request is None:
        return "not among the submitted requests (a manifest from another run?)"
    body, why = _outcome(line)
    if body is None:
        return why or "no response"
    try:
        PARSERS[request.endpoint](body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable {request.endpoint} response: {exc}"
    return request, body


def collect(
    client: ModelClient,
    status: BatchStatus,
    requests_by_id: Mapping[str, BatchRequest],
    cache: ResponseCache,
) -> tuple[int, dict[str, str]]:
    """Write every answered request of a finished batch into ``cache`` under its custom_id.

    Returns (entries written, {custom_id: why} for the lines that failed); failed lines are
    never cached. Entries get ``latency_s`` 0.0 (a batch has no per-request latency) and
    ``created_at`` now. An expired or cancelled batch yields what it finished; requests
    that never ran have no line and are simply not written. A ``failed`` batch, one still
    running or a cache that cannot be written raises :class:`BatchError`.
    """
    if status.status == "failed":
        why = "; ".join(status.errors) or "no reason given"
        raise BatchError(f"batch {status.id} failed: {why}: fix the requests and submit again")
    if not status.done:
        raise BatchError(
            f"batch {status.id} is still {status.status}: poll it until it finishes first"
        )
    if not cache.writes_enabled:
        raise BatchError(
            f"the response cache is read-only (--eval-record {cache.mode}) so batch results "
            "cannot be stored: collect with --eval-record new"
        )
    sdk = _sdk(client)
    secrets = client.secrets()
    written = 0
    failed: dict[str, str] = {}
    for file_id in (status.output_file_id, status.error_file_id):
        if not file_id:
            continue
        try:
            content = sdk.files.content(file_id).content
        except Exception as exc:
            doing = f"downloading the results of batch {status.id}"
            raise _error(client, exc, doing, f"GET /v1/files/{file_id}/content") from None
        for number, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                custom_id = str(line["custom_id"])
            except (ValueError, TypeError, KeyError):
                failed[f"{file_id}:{number}"] = "unreadable result line (not a batch output)"
                continue
            result = _cacheable(line, requests_by_id.get(custom_id))
            if isinstance(result, str):
                failed[custom_id] = redact(result, secrets)
                continue
            request, body = result
            entry = CacheEntry(
                endpoint=request.endpoint,
                sample=request.sample,
                request=request.body,
                response=body,
                latency_s=0.0,
                created_at=time.time(),
            )
            cache.put(custom_id, entry)
            written += 1
    return written, failed


# -- pending batches (submit now, collect in a later job) ----------------------------------


def save_pending(
    directory: Path, batch_ids: Sequence[str], requests: Sequence[BatchRequest]
) -> Path:
    """Write a manifest a later ``--eval-batch=collect`` job reads: the batch ids, when, and
    each request (custom_id, endpoint, body, sample). No key, no server URL."""
    created = time.time()
    ids = [str(batch_id) for batch_id in batch_ids]
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "created_at": created,
        "batch_ids": ids,
        "requests": [
            {"custom_id": r.custom_id, "endpoint": r.endpoint, "body": r.body, "sample": r.sample}
            for r in _unique(requests)
        ],
    }
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created))
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:10]
    path = directory / f"batch-{stamp}-{digest}.json"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_pending(directory: Path) -> list[tuple[Path, list[str], list[BatchRequest]]]:
    """Every manifest in ``directory``, oldest first, as (path, batch ids, requests).

    Delete a manifest's file once its batches are collected. A manifest that cannot be
    read raises :class:`BatchError` naming it.
    """
    if not directory.is_dir():
        return []
    pending: list[tuple[Path, list[str], list[BatchRequest]]] = []
    for path in sorted(directory.glob(_MANIFEST_GLOB)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema_version") != MANIFEST_VERSION:
                raise ValueError(f"schema_version {data.get('schema_version')!r}")
            ids = [str(batch_id) for batch_id in data["batch_ids"]]
            requests = [
                BatchRequest(
                    custom_id=str(item["custom_id"]),
                    endpoint=str(item["endpoint"]),
                    body=dict(item["body"]),
                    sample=int(item.get("sample", 0)),
                )
                for item in data["requests"]
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, BatchError) as exc:
            raise BatchError(
                f"cannot read the pending-batch manifest {path} ({exc}): delete it and "
                "submit the batch again"
            ) from None
        pending.append((path, ids, requests))
    return pending


def run_batch(
    client: ModelClient,
    *,
    mode: str,
    jobs: Sequence[Job],
    pending_dir: Path,
    run_id: str,
    poll_interval: float,
    report: Callable[[str], None],
) -> str | None:
    """``--eval-batch``: send the jobs' requests that are not cached yet through the Batch API.

    ``run`` waits and fills the cache (the tests then replay it); ``submit`` stops after
    submitting and returns the message to end the session with; ``collect`` fetches
    batches an earlier ``submit`` left. Raises BatchError with one clear line.
    """
    cache = client.cache
    if cache is None or not cache.writes_enabled:
        raise BatchError("--eval-batch fills the response cache: use --eval-record new")
    if mode == "collect":
        manifests = load_pending(pending_dir)
        if not manifests:
            report(f"no pending batches under {pending_dir}")
        for path, pending_ids, pending in manifests:
            _collect_all(client, pending_ids, pending, poll_interval, report)
            path.unlink()
        return None
    wanted: dict[str, BatchRequest] = {}
    for job in jobs:
        try:
            assert job.build is not None
            api, body, context, _ = job.build()
        except Exception:  # a prompt that does not render errors its case later
            continue
        request = BatchRequest.for_call(ENDPOINTS[api], body, context.sample)
        if cache.get(request.custom_id) is None:
            wanted[request.custom_id] = request
    requests = list(wanted.values())
    if not requests:
        report("every declared request is in the cache already: nothing to batch")
        return None
    ids = submit(client, requests, metadata={"run": run_id})
    report(f"submitted {len(requests)} requests as batch {', '.join(ids)}")
    if mode == "submit":
        path = save_pending(pending_dir, ids, requests)
        return (
            f"submitted {len(requests)} requests ({', '.join(ids)}; manifest {path}); "
            "collect them later with: pytest --eval-batch=collect"
        )
    _collect_all(client, ids, requests, poll_interval, report)
    return None


def _collect_all(
    client: ModelClient,
    ids: list[str],
    requests: Sequence[BatchRequest],
    poll_interval: float,
    report: Callable[[str], None],
) -> None:
    cache = client.cache
    assert cache is not None
    by_id = {r.custom_id: r for r in requests}
    for batch_id in ids:
        status = poll(
            client,
            batch_id,
            interval=poll_interval,
            on_progress=lambda s: report(
                f"batch {s.id}: {s.status} ({s.completed + s.failed}/{s.total})"
            ),
        )
        written, failed = collect(client, status, by_id, cache)
        report(f"batch {batch_id}: {written} responses cached, {len(failed)} failed")
        for custom_id, message in list(failed.items())[:3]:
            report(f"  {custom_id[:12]}: {message}")
