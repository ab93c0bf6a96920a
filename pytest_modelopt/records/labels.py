"""Human labels: a reviewer's pass/fail on one case (or one grade of it), one JSON per line.

Labels live in the repository (e.g. ``evals/labels/*.jsonl``) and are written by
``modelopt review``, by the run viewer's "save labels" download, and by ``modelopt labels
merge``. They calibrate LLM judges (verdict/calibration.py) and feed the optimize stage
(preferred SFT examples, DPO pairs, pinned holdout cases). The format is documented in
docs/reference.md; a line written by a newer format is refused, never misread.

A label is bound to what the reviewer saw: the case (eval, case id, model, sample), the
output (``output_sha256``, the sha256 of its text) and, for a label of one grade, the grader's
identity (``GradeRecord.identity``): a judge whose model, prompt or parameters changed since
is another judge, and the label does not count for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import __version__

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .models import CaseRecord, GradeRecord

#: The labels format this version writes; a newer one is refused with what to do.
LABELS_VERSION = 1
#: Grader types that are LLM judges: their grades are what labels calibrate.
JUDGE_TYPES = frozenset({"score_model", "label_model"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LabelsError(Exception):
    """Labels that cannot be read: one line per bad line (file, line, field, what to do)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Label(BaseModel):
    """One human verdict. ``grader`` None: a label of the whole case (its output)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = LABELS_VERSION
    eval: str = Field(min_length=1)
    case_id: str = Field(min_length=1)
    model: str = Field(min_length=1)
    sample: int = Field(default=0, ge=0)
    grader: str | None = None
    grader_identity: str | None = None
    verdict: Literal["pass", "fail"]
    note: str = ""
    reviewer: str = Field(min_length=1)
    labelled_at: str
    run_id: str
    output_sha256: str | None = None

    @field_validator("labelled_at")
    @classmethod
    def _utc_timestamp(cls, value: str) -> str:
        """ISO 8601 with a time zone (``Z`` or an offset), so times from two reviewers
        compare; a local time without a zone cannot be ordered against anyone's."""
        parsed = parse_time(value)
        if parsed is None:
            raise ValueError(
                f"{value!r} is not an ISO 8601 time with a time zone, e.g. 2026-12-07T17:05:00Z"
            )
        return value

    @field_validator("output_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.fullmatch(value):
            raise ValueError("must be 64 lowercase hex digits (the sha256 of the output text)")
        return value

    @property
    def time(self) -> datetime:
        parsed = parse_time(self.labelled_at)
        assert parsed is not None  # checked when the label was read
        return parsed

    @property
    def key(self) -> tuple[str, str, str, int, str | None, str | None, str | None]:
        """What a label is about: two labels with the same key and different verdicts
        conflict; with different outputs they label different answers and do not."""
        return (
            self.eval,
            self.case_id,
            self.model,
            self.sample,
            self.grader,
            self.grader_identity,
            self.output_sha256,
        )

    def line(self) -> str:
        return self.model_dump_json() + "\n"


def parse_time(value: str) -> datetime | None:
    """An aware datetime from ISO 8601 (``Z`` accepted on every Python); None otherwise."""
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def output_sha256(text: str | None) -> str | None:
    """The hash a label binds an output with: sha256 of its UTF-8 text."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_judge(grade: GradeRecord) -> bool:
    """A grade given by an LLM judge (or a multi grader that contains one)."""
    definition = grade.grader
    if not isinstance(definition, dict):
        return False
    if definition.get("type") in JUDGE_TYPES:
        return True
    subs = definition.get("graders")
    return isinstance(subs, dict) and any(
        isinstance(s, dict) and s.get("type") in JUDGE_TYPES for s in subs.values()
    )


def label_for(
    case: CaseRecord,
    verdict: Literal["pass", "fail"],
    *,
    reviewer: str,
    run_id: str,
    grade: GradeRecord | None = None,
    note: str = "",
    labelled_at: str | None = None,
) -> Label:
    """A label of ``case`` (or of one of its grades) as the reviewer saw it."""
    return Label(
        eval=case.eval,
        case_id=case.case_id,
        model=case.model,
        sample=case.sample,
        grader=None if grade is None else grade.name,
        grader_identity=None if grade is None else grade.identity,
        verdict=verdict,
        note=note,
        reviewer=reviewer,
        labelled_at=labelled_at or utc_now(),
        run_id=run_id,
        output_sha256=output_sha256(case.output),
    )


def read_labels(path: Path) -> list[Label]:
    """Every label of a file; LabelsError with one message per bad line. Blank lines are
    skipped (a file edited by hand)."""
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise LabelsError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    labels: list[Label] = []
    problems: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            labels.append(_label_line(path, number, raw))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise LabelsError(problems)
    return labels


def _label_line(path: Path, number: int, raw: bytes) -> Label:
    where = f"{path}:{number}"
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where}: not JSON ({exc.msg} at column {exc.colno}): each line must be one "
            "label object; fix or remove the line"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a label must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", LABELS_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > LABELS_VERSION:
        raise ValueError(
            f"{where}: written in labels format {version} by a newer pytest-modelopt; this one "
            f"({__version__}) reads formats up to {LABELS_VERSION}: upgrade pytest-modelopt "
            "(pip install -U pytest-modelopt) to read it"
        )
    try:
        return Label.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the line"
        hint = (
            "remove it (known fields: " + ", ".join(Label.model_fields) + ")"
            if first["type"] == "extra_forbidden"
            else "fix it (the format is in docs/reference.md, 'Labels')"
        )
        raise ValueError(f"{where}: {field}: {first['msg']}: {hint}") from None


def read_label_files(paths: Iterable[Path]) -> list[Label]:
    """The labels of several files, every bad line of every file reported at once."""
    labels: list[Label] = []
    problems: list[str] = []
    for path in paths:
        try:
            labels += read_labels(path)
        except LabelsError as exc:
            problems += exc.problems
    if problems:
        raise LabelsError(problems)
    return labels


def find_label_files(patterns: Iterable[str], root: Path) -> list[Path]:
    """Files matching the glob patterns, relative to ``root`` (the project's root), sorted
    and each once. A pattern without a wildcard names a file, which must exist."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        if not any(c in pattern for c in "*?["):
            path = Path(pattern) if Path(pattern).is_absolute() else root / pattern
            if not path.is_file():
                raise LabelsError(
                    [f"labels file {path} does not exist: fix the path in the labels setting"]
                )
            found[path] = None
            continue
        if Path(pattern).is_absolute():
            base, rel = Path(pattern).anchor, str(Path(pattern).relative_to(Path(pattern).anchor))
            matches = sorted(Path(base).glob(rel))
        else:
            matches = sorted(root.glob(pattern))
        found.update((p, None) for p in matches if p.is_file())
    return list(found)


def append_labels(path: Path, labels: Iterable[Label]) -> None:
    """Append whole lines, each with one ``write`` on an ``O_APPEND`` descriptor (a crash
    loses at most the line being written, as run files do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for label in labels:
            os.write(fd, label.line().encode("utf-8"))
    finally:
        os.close(fd)


def write_labels(path: Path, labels: Iterable[Label]) -> None:
    """Write a whole file, then rename: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(label.line() for label in labels), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


Prefer = Literal["latest", "pass", "fail"]


class Conflict(BaseModel):
    """Labels of the same thing (case, grader, identity, output) with different verdicts."""

    labels: list[Label]

    def describe(self) -> str:
        first = self.labels[0]
        what = f"grade {first.grader!r}" if first.grader else "the case"
        who = ", ".join(f"{lab.reviewer} {lab.verdict} at {lab.labelled_at}" for lab in self.labels)
        return (
            f"{first.eval} [{first.model}] case {first.case_id} sample {first.sample}, "
            f"{what}: {who}"
        )


def merge_labels(
    labels: Iterable[Label], prefer: Prefer | None = None
) -> tuple[list[Label], list[Conflict], int]:
    """One label per key: labels that agree collapse into the latest one; labels that
    disagree are a conflict, resolved by ``prefer`` (the latest label, or the pass or fail
    verdict) or returned unresolved (then left out of the merged list).

    Returns the merged labels in a stable order, the conflicts, and how many labels were
    collapsed into another that agreed with them.
    """
    by_key: dict[tuple[object, ...], list[Label]] = {}
    for label in labels:
        by_key.setdefault(label.key, []).append(label)
    merged: list[Label] = []
    conflicts: list[Conflict] = []
    collapsed = 0
    for group in by_key.values():
        group.sort(key=lambda lab: (lab.time, lab.reviewer))
        verdicts = {lab.verdict for lab in group}
        if len(verdicts) > 1:
            conflicts.append(Conflict(labels=group))
            if prefer is None:
                continue
            kept = group if prefer == "latest" else [g for g in group if g.verdict == prefer]
            merged.append(kept[-1])
            continue
        merged.append(group[-1])
        collapsed += len(group) - 1
    merged.sort(key=lambda lab: (*[str(part) for part in lab.key], lab.labelled_at))
    return merged, conflicts, collapsed
