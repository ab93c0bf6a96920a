"""Training data from OpenAI stored completions, instead of local run records.

With ``[tool.modelopt] store = true`` every Chat Completions call of an eval goes out with
``store: true`` and ``metadata`` naming the eval and the case (``modelopt_eval``,
``modelopt_case``); after the session each stored completion is tagged with its verdict
(``modelopt_verdict``: passed / failed / error) by :func:`tag_verdicts`. OpenAI then keeps
them for the dashboard's distillation, and :func:`stored_records` reads them back as
``CaseRecord``s, so the SFT / DPO builders work the same on another machine, a later day,
or after the local ``.modelopt`` directory is gone.

Only OpenAI's platform keeps completions: vLLM, Ollama and most compatible servers answer
404, which becomes a :class:`StoredCompletionsError` saying so. ``openai`` is imported
inside the functions only: it costs ~0.9 s of start-up.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Final

from ..model.failures import classify
from ..model.wire import sdk_data
from ..records.models import CaseRecord, ErrorRecord, GradeRecord, UsageRecord
from ..secrets import redact

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from openai import OpenAI

    from ..records.models import Status

__all__ = [
    "META_CASE",
    "META_EVAL",
    "META_VERDICT",
    "VERDICTS",
    "StoredCompletionsError",
    "StoredRecords",
    "stored_records",
    "tag_verdicts",
]

#: Metadata keys the plugin tags stored completions with.
META_EVAL: Final = "modelopt_eval"
META_CASE: Final = "modelopt_case"
META_VERDICT: Final = "modelopt_verdict"
#: The values ``modelopt_verdict`` takes; they are ``CaseRecord`` statuses as they are.
VERDICTS: Final = ("passed", "failed", "error")
#: The grade a stored verdict becomes: the only grade a stored completion carries.
GRADE_NAME: Final = "stored_verdict"
#: The largest page OpenAI serves.
_PAGE_SIZE: Final = 100
#: Every loop over the API is bounded: at most 200 pages per listing ...
_MAX_PAGES: Final = 200
#: ... and 20 pages of input messages per completion.
_MAX_MESSAGE_PAGES: Final = 20
#: Characters that make an eval name a glob, matched here rather than by the server.
_GLOB: Final = re.compile(r"[*?\[]")
_STORE_HINT: Final = (
    "the eval's calls must have been made with `store = true` under [tool.modelopt], "
    "with this API key's project"
)


class StoredCompletionsError(Exception):
    """Stored completions cannot be read or written; the message says what to check."""


class StoredRecords(list[CaseRecord]):
    """The records read back, with what was passed over and why (reason -> count)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def stored_records(
    client: OpenAI,
    *,
    evals: Sequence[str] = (),
    model: str | None = None,
    verdict: str | None = None,
    limit: int | None = None,
    concurrency: int = 8,
    page_size: int = _PAGE_SIZE,
) -> StoredRecords:
    """Stored completions tagged by the plugin, as ``CaseRecord``s, oldest first.

    ``evals`` are eval names or globs (a single plain name is also filtered by the server);
    ``model`` and ``verdict`` are filtered by the server too. A completion without the
    plugin's metadata, or not yet tagged with a verdict, is skipped and counted in
    ``.skipped``. ``limit`` caps the records returned; ``concurrency`` the input-message
    requests in flight (one per completion); ``page_size`` the items asked per request
    (OpenAI serves at most 100).
    """
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    if not 1 <= page_size <= _PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {_PAGE_SIZE}")
    if isinstance(evals, str):  # one name, not its characters
        evals = (evals,)
    out = StoredRecords()
    if limit == 0:
        return out
    query: dict[str, Any] = {"limit": page_size, "order": "asc"}
    metadata: dict[str, str] = {}
    if verdict is not None:
        metadata[META_VERDICT] = verdict
    if len(evals) == 1 and not _GLOB.search(evals[0]):
        metadata[META_EVAL] = evals[0]
    if metadata:
        query["metadata"] = metadata
    if model is not None:
        query["model"] = model
    secrets = _secrets(client)

    chosen: list[dict[str, Any]] = []
    try:
        for completion in _pages(client.chat.completions.list(**query), _MAX_PAGES, out):
            if _wanted(completion, out, evals=evals, model=model, verdict=verdict):
                chosen.append(completion)
                if limit is not None and len(chosen) >= limit:
                    break
    except StoredCompletionsError:
        raise
    except Exception as exc:
        raise _api_error(exc, "listing stored chat completions", secrets) from None

    def messages(completion: dict[str, Any]) -> list[dict[str, Any]]:
        return _input_messages(client, str(completion["id"]), secrets, page_size)

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(chosen) or 1))) as pool:
        inputs = list(pool.map(messages, chosen))  # re-raises the first failure, in order

    samples: dict[tuple[str, str, str], int] = {}
    for completion, prompt in zip(chosen, inputs, strict=True):
        out.append(_record(completion, prompt, samples, model))
    if not out:
        passed_over = "; ".join(f"{n} {why}" for why, n in sorted(out.skipped.items()))
        out.notes.append(
            "no stored completion matched"
            + (f" (skipped: {passed_over})" if passed_over else "")
            + f": {_STORE_HINT}, and tagged with verdicts after the session"
        )
    return out


def tag_verdicts(
    client: OpenAI, tags: Sequence[tuple[str, dict[str, str]]], *, concurrency: int = 8
) -> list[str]:
    """Set each stored completion's metadata (the full map: an update replaces it).

    Tagging is bookkeeping after the session: it must never fail the run, so every
    failure becomes a one-line warning (in the order of ``tags``) instead of an exception.
    """
    if not tags:
        return []
    secrets = _secrets(client)

    def tag(item: tuple[str, dict[str, str]]) -> str | None:
        completion_id, metadata = item
        try:
            client.chat.completions.update(completion_id, metadata=dict(metadata))
        except Exception as exc:
            failure = classify(exc)
            why = _why(failure.message, secrets)
            hint = _hint(failure.status, failure.retryable, one=True, writing=True)
            return (
                f"could not tag stored completion {completion_id} ({failure.kind}): {why}; {hint}"
            )
        return None

    workers = max(1, min(concurrency, len(tags)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelopt-tag") as pool:
        results = list(pool.map(tag, tags))
    return [warning for warning in results if warning is not None]


# -- helpers ---------------------------------------------------------------------------


def _pages(page: Any, max_pages: int, out: StoredRecords | None = None) -> Iterator[dict[str, Any]]:
    """The items of a cursor page and the pages after it, at most ``max_pages`` pages; a
    server that serves the same cursor twice ends the listing instead of looping."""
    seen: set[str] = set()
    for _ in range(max_pages):
        items = [sdk_data(item) for item in page.data or []]
        last = str(items[-1].get("id")) if items else None
        if last is not None and last in seen:
            return
        for item in items:
            seen.add(str(item.get("id")))
            yield item
        if not page.has_next_page():
            return
        page = page.get_next_page()
    if out is not None:
        out.notes.append(
            f"stopped after {max_pages} pages of stored completions: narrow the listing "
            "with evals=, model= or verdict=, or pass limit="
        )


def _wanted(
    completion: dict[str, Any],
    out: StoredRecords,
    *,
    evals: Sequence[str],
    model: str | None,
    verdict: str | None,
) -> bool:
    """Whether a listed completion is one of ours and selected; filtered here as well,
    for a server that ignores a filter."""
    metadata = completion.get("metadata") or {}
    name, case = metadata.get(META_EVAL), metadata.get(META_CASE)
    if not isinstance(name, str) or not isinstance(case, str) or not name or not case:
        out.skip("not made by an eval (no modelopt_eval / modelopt_case metadata)")
        return False
    if evals and not any(fnmatchcase(name, pattern) for pattern in evals):
        out.skip("another eval")
        return False
    if model is not None and not _same_model(str(completion.get("model") or ""), model):
        out.skip("another model")
        return False
    tagged = metadata.get(META_VERDICT)
    if tagged is None:
        out.skip("no verdict tag (modelopt_verdict)")
        return False
    if tagged not in VERDICTS:
        out.skip(f"unknown verdict {tagged!r}")
        return False
    if verdict is not None and tagged != verdict:
        out.skip("another verdict")
        return False
    return True


def _same_model(answered: str, asked: str) -> bool:
    """OpenAI answers with the dated snapshot (``gpt-4o-2024-08-06`` for ``gpt-4o``)."""
    return re.fullmatch(re.escape(asked) + r"(-\d{4}-\d{2}-\d{2})?", answered) is not None


def _input_messages(
    client: OpenAI, completion_id: str, secrets: tuple[str, ...], page_size: int
) -> list[dict[str, Any]]:
    """The stored request's messages as ``[{role, content}]``, in order (all pages)."""
    try:
        page = client.chat.completions.messages.list(completion_id, limit=page_size, order="asc")
        items = list(_pages(page, _MAX_MESSAGE_PAGES))
    except Exception as exc:
        raise _api_error(
            exc,
            f"reading the input messages of stored completion {completion_id}",
            secrets,
            one=True,
        ) from None
    messages: list[dict[str, Any]] = []
    for item in items:
        parts = item.get("content_parts")
        content: Any = parts if isinstance(parts, list) and parts else item.get("content")
        message: dict[str, Any] = {"role": item.get("role"), "content": content}
        if isinstance(item.get("name"), str):
            message["name"] = item["name"]
        messages.append(message)
    return messages


def _record(
    completion: dict[str, Any],
    prompt: list[dict[str, Any]],
    samples: dict[tuple[str, str, str], int],
    asked: str | None,
) -> CaseRecord:
    """One stored completion as the case record a local run would have written.

    The model is the completion's, except that a dated snapshot of the model ``asked`` for
    is recorded under the name asked (the snapshot goes in ``note``): the eval ran as
    ``gpt-4o``, and a ``Selection(teacher="gpt-4o")`` must find it.
    """
    metadata = completion["metadata"]
    eval_name, case_id = str(metadata[META_EVAL]), str(metadata[META_CASE])
    status: Status = metadata[META_VERDICT]
    answered = str(completion.get("model") or "")
    model = asked if asked is not None and answered != asked else answered
    note = f"stored completion of {answered}" if model != answered else None
    key = (eval_name, model, case_id)
    sample = samples.get(key, 0)
    samples[key] = sample + 1
    choices = completion.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    output = message.get("content")
    grades: list[GradeRecord] = []
    error = None
    if status == "error":
        error = ErrorRecord(kind="stored_verdict", message="the eval recorded an error")
    else:
        passed = status == "passed"
        grades.append(
            GradeRecord(
                name=GRADE_NAME,
                score=1.0 if passed else 0.0,
                passed=passed,
                reason=f"{META_VERDICT}={status}",
            )
        )
    usage = completion.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    created = completion.get("created")
    finished_at = float(created) if isinstance(created, (int, float)) else time.time()
    return CaseRecord(
        eval=eval_name,
        nodeid=f"stored::{completion['id']}",
        model=model,
        case_id=case_id,
        sample=sample,
        status=status,
        input=prompt,
        output=output if isinstance(output, str) else None,
        grades=grades,
        error=error,
        usage=UsageRecord(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        ),
        calls=1,
        note=note,
        finished_at=finished_at,
    )


def _secrets(client: Any) -> tuple[str, ...]:
    key = getattr(client, "api_key", None)
    # A placeholder such as "x" (key-less local servers) is no secret, and replacing it
    # everywhere would shred the message.
    return (key,) if isinstance(key, str) and len(key.strip()) >= 8 else ()


def _why(message: str, secrets: tuple[str, ...]) -> str:
    """The failure's text on one line, redacted, without the generic key hint (the hint
    says more)."""
    text = " ".join(redact(message, secrets).split())
    return text.removesuffix(" (check OPENAI_API_KEY)").rstrip(". ")


def _hint(status: int | None, retryable: bool, *, one: bool = False, writing: bool = False) -> str:
    """What to check after a failure; ``one``: the request was about one completion."""
    access = "write (update)" if writing else "read"
    if status in (401, 403):
        return (
            f"check OPENAI_API_KEY: it must be valid and allowed to {access} stored chat "
            "completions (a restricted key needs that permission on /v1/chat/completions), "
            "in the project that made the calls"
        )
    if status == 404:
        gone = "the completion was deleted or made in another project, or " if one else ""
        return (
            f"{gone}this server keeps no stored completions (only OpenAI's platform does; "
            "vLLM, Ollama and most compatible servers do not: check OPENAI_BASE_URL); "
            f"{_STORE_HINT}"
        )
    if retryable:
        return "try again later"
    return _STORE_HINT


def _api_error(
    exc: Exception, doing: str, secrets: tuple[str, ...], *, one: bool = False
) -> StoredCompletionsError:
    """One message for an SDK failure: what failed, the status and why, what to check."""
    failure = classify(exc)
    why = _why(failure.message, secrets)
    hint = _hint(failure.status, failure.retryable, one=one)
    return StoredCompletionsError(f"{doing} failed ({failure.kind}): {why}; {hint}")
