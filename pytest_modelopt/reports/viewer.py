"""The run viewer's data: every case of a run (and its baseline's twin) as one JSON document.

The HTML page embeds this document in a ``<script type="application/json">`` element and
builds the case list from it in the browser, with ``textContent`` only: model output and
dataset text never become markup. The document is escaped for that element here (``<``,
``>`` and ``&`` as ``\\u`` escapes), so no value can close the element or open a comment.

Why the browser builds the list instead of the template writing every case as HTML: a run
of 10,000 cases as static rows is a page Chromium takes seconds to lay out; as data, the
page draws only the rows on screen (docs/benchmarks.md has the figures).

A case's input images (``images.py``: a file the record names by path and hash, a data
URL) are embedded as data URLs built from their own bytes, within a budget, since the page's
CSP loads nothing from anywhere else; an https image is named, never fetched.

Texts (outputs, input messages, grade reasons) are stored once in the document's
``strings`` list and named by their index: a run's prompts share their system messages,
and a baseline's output is often the candidate's, so a large run's page is much smaller
(and opens faster) than one that repeats them. For the same reason a grade is a list
(``GRADE_FIELDS``), eval and model names are indices into ``evals`` / ``models``, and a
field whose value is None is left out.

A case here is one sample of one case on one model: a ``CaseRecord``. With a baseline, each
is paired with the baseline's record of the same eval, case and sample, on the model the
comparison set against it (the same model for two runs; the baseline model for
``--eval-baseline-model``), and gets a ``change``: ``regressed`` / ``improved`` when its
score went down / up, ``same``, or ``new`` when the baseline has no such case.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from .. import images
from ..records.store import sort_cases

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..records.models import CaseRecord, GradeRecord
    from ..verdict.document import EvalReport

#: The document's format; the page refuses a document of another version.
VIEWER_VERSION = 1
#: Characters of one output or input kept in the page; the rest is cut with a note (the
#: hash in a label is still of the whole output).
TEXT_CHARS = 20_000
#: An input's image is embedded in the page (as a data URL) up to this size; all of a
#: page's images together up to ``THUMBS_TOTAL``. Past them it is named by path and hash.
THUMB_BYTES = 512 * 1024
THUMBS_TOTAL = 32 * 1024 * 1024
#: an input image's list, in order: the message's role, its name (the file's path and hash,
#: or its URL; an index into ``strings``), its sha256, the data URL it is shown from (an
#: index into ``strings``) or why it is not shown
IMAGE_FIELDS = ("role", "name", "sha256", "src", "note")

#: a grade's list, in order (the page turns it back into an object)
GRADE_FIELDS = ("name", "score", "passed", "reason", "error", "identity")
#: a trajectory item's list, in order: its kind, agent and name as they are, the rest
#: (arguments as JSON, a tool's output, the exception a tool raised, a message's text)
#: as indices into ``strings``
ITEM_FIELDS = ("kind", "agent", "name", "arguments", "output", "error", "content")

_Key = tuple[str, str, str, int]  # eval, model, case id, sample


class _Strings:
    """Each distinct text once; a field holds its index (or None)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str | None) -> int | None:
        if text is None:
            return None
        return self.index.setdefault(text, len(self.index))

    def table(self) -> list[str]:
        return list(self.index)  # dicts keep insertion order: position == index


def _cut(text: str | None) -> tuple[str | None, int]:
    if text is None or len(text) <= TEXT_CHARS:
        return text, 0
    return text[:TEXT_CHARS], len(text) - TEXT_CHARS


def _messages(value: Any, strings: _Strings) -> list[list[Any]]:
    """The input as messages ([role, text]): a chat list as it was sent, anything else as
    one message holding its JSON."""
    if value is None:
        return []
    if isinstance(value, str):
        return [["user", strings(_cut(value)[0])]]
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        out = []
        for message in value:
            content = message.get("content")
            if isinstance(content, list):  # parts: text as text, images named, others JSON
                text = "\n".join(_part_text(p) for p in content)
            elif isinstance(content, str):
                text = content
            else:
                text = _json({k: v for k, v in message.items() if k != "role"})
            out.append([str(message["role"]), strings(_cut(text)[0])])
        return out
    return [["input", strings(_cut(_json(value))[0])]]


def _part_text(part: Any) -> str:
    if isinstance(part, dict) and "text" in part:
        return str(part.get("text"))
    url = images.image_urls([{"role": "", "content": [part]}])
    if url:  # the image itself is shown apart (``_Images``); a data URL is never text here
        return f"[image: {_image_label(url[0][1])[0]}]"
    return _json(part)


def _image_label(url: str) -> tuple[str, str | None]:
    """(what the page names an image by, its sha256 when known)."""
    ref = images.parse_ref(url)
    if ref is not None:
        return f"{ref.path} (sha256 {ref.sha256[:12]})", ref.sha256
    if url.lower().startswith("data:"):
        return "an inline data URL", None
    return url, None


class _Images:
    """The images of a case's input, each shown from a data URL built here from the
    image's own bytes (the page's CSP loads nothing else, and fetches nothing): a file the
    record references while it still has its hash, or a data URL the case held, within
    ``THUMB_BYTES`` an image and ``THUMBS_TOTAL`` a page (the same image once, however
    many cases show it). Any other image is named by its path and hash, or its URL."""

    def __init__(self, strings: _Strings) -> None:
        self.strings = strings
        self.left = THUMBS_TOTAL
        self.seen: dict[str, tuple[int | None, str | None, str | None]] = {}

    def __call__(self, value: Any) -> list[list[Any]] | None:
        found = [self._one(role, url) for role, url in images.image_urls(value)]
        return found or None

    def _one(self, role: str, url: str) -> list[Any]:
        label, sha = _image_label(url)
        if url not in self.seen:
            self.seen[url] = self._embed(url, sha)
        src, sha, note = self.seen[url]
        return [role, self.strings(label), sha, src, note]

    def _embed(self, url: str, sha: str | None) -> tuple[int | None, str | None, str | None]:
        """(the data URL's string index, sha256, why it is not shown)."""
        try:
            data = images.url_bytes(url)
        except images.ImageError as exc:
            return None, sha, f"not shown: {exc}"
        if data is None:
            return None, None, "not fetched: the page loads nothing from the network"
        sha = hashlib.sha256(data).hexdigest()
        media = images.sniff(data)
        if media is None:
            return None, sha, "not shown: not a known image type"
        if len(data) > THUMB_BYTES or len(data) > self.left:
            return None, sha, f"not shown: {len(data):,} bytes is over the page's budget"
        self.left -= len(data)
        embedded = f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
        return self.strings(embedded), sha, None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _grade(grade: GradeRecord, strings: _Strings) -> list[Any]:
    return [
        grade.name,
        _finite(grade.score),
        grade.passed,
        strings(grade.reason),
        grade.error,
        # GradeRecord.identity (the grader's identity for labels) when the run has it
        getattr(grade, "identity", None),
    ]


def _finite(value: float | None) -> float | None:
    """A number JSON can hold (NaN and infinities are not JSON): None stands for them."""
    return value if value is not None and math.isfinite(value) else None


def _side(record: CaseRecord, strings: _Strings) -> dict[str, Any]:
    """What both sides of a diff show."""
    output, cut = _cut(record.output)
    return {
        "status": record.status,
        "score": _finite(record.score),
        "output": strings(output),
        "output_cut": cut,
        "grades": [_grade(g, strings) for g in record.grades],
        "error": None if record.error is None else f"{record.error.kind}: {record.error.message}",
        "cost": _finite(record.cost),
        "unpriced": record.unpriced,
        "latency": None if record.latency_s is None else round(record.latency_s, 3),
    }


def _case(record: CaseRecord, strings: _Strings, shown: _Images) -> dict[str, Any]:
    out = _side(record, strings)
    out.update(
        images=shown(record.input),
        case_id=record.case_id,
        sample=record.sample,
        nodeid=record.nodeid,
        input=_messages(record.input, strings),
        output_sha256=(
            None
            if record.output is None
            else hashlib.sha256(record.output.encode("utf-8")).hexdigest()
        ),
        tokens=[record.usage.prompt_tokens, record.usage.completion_tokens],
        note=record.note,
        trajectory=_trajectory(record, strings),
        turns=None if record.trajectory is None else record.trajectory.turns,
    )
    return out


def _trajectory(record: CaseRecord, strings: _Strings) -> list[list[Any]] | None:
    """What the case's agent did, item by item (``ITEM_FIELDS``); None when none ran."""
    if record.trajectory is None:
        return None
    return [
        [
            item.kind,
            item.agent,
            item.name,
            strings(None if item.arguments is None else _cut(_arguments(item.arguments))[0]),
            strings(_cut(item.output)[0]),
            strings(item.error),
            strings(_cut(item.content)[0]),
        ]
        for item in record.trajectory.items
    ]


def _arguments(value: dict[str, Any] | str) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _change(candidate: CaseRecord, baseline: CaseRecord | None) -> str:
    if baseline is None:
        return "new"
    before, after = baseline.score, candidate.score
    if before is None and after is None:
        return "same" if baseline.status == candidate.status else "changed"
    if before is None or after is None:
        return "regressed" if after is None else "improved"
    if after < before:
        return "regressed"
    return "improved" if after > before else "same"


def document(
    report: EvalReport,
    cases: Iterable[CaseRecord],
    baseline: Iterable[CaseRecord] | None = None,
) -> dict[str, Any]:
    """The viewer's document for one run; ``baseline``: the records the comparison's
    baseline side came from (another run's, or this run's own for a baseline model)."""
    records = sort_cases(cases)
    comparison = report.comparison
    # (eval, candidate model) -> the baseline model it was compared with
    against = {
        (row.eval, row.candidate.model): row.baseline.model
        for row in (comparison.evals if comparison is not None else [])
    }
    base_by_key: dict[_Key, CaseRecord] = {}
    if baseline is not None and comparison is not None:
        base_by_key = {(r.eval, r.model, r.case_id, r.sample): r for r in baseline}
    strings, evals, models = _Strings(), _Strings(), _Strings()
    shown = _Images(strings)
    out = []
    for record in records:
        item = _case(record, strings, shown)
        item["eval"], item["model"] = evals(record.eval), models(record.model)
        base_model = against.get((record.eval, record.model))
        if base_model is not None and base_by_key:
            twin = base_by_key.get((record.eval, base_model, record.case_id, record.sample))
            item["base"] = None if twin is None else _side(twin, strings)
            item["change"] = _change(record, twin)
            if twin is not None:
                item["base"] = _without_none(item["base"])
        out.append(_without_none(item))
    return {
        "version": VIEWER_VERSION,
        "run_id": report.summary.run.run_id,
        "baseline_run": None if comparison is None else comparison.baseline_run,
        "paired": bool(base_by_key),
        "evals": evals.table(),
        "models": models.table(),
        "cases": out,
        "strings": strings.table(),
    }


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element: no ``<``, ``>`` or
    ``&`` (so no ``</script>`` or ``<!--``), and no line separators."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # <, > and & occur only inside JSON strings, where a \u escape means the same character
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
