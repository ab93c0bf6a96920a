"""Reading and writing runs on disk: the writer, the readers, references and merging.

Each process appends whole lines with a single ``write`` on an ``O_APPEND`` descriptor, so a
crash or Ctrl-C loses at most the line being written, and readers skip a torn last line.
Merging runs (xdist workers, CI shards) is reading several ``cases/`` files together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from .. import __version__
from .models import SCHEMA_VERSION, CaseRecord, RunInfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

M = TypeVar("M", bound=BaseModel)


class RunUnreadable(Exception):
    """A run whose files cannot be read (truncated, corrupt, or not a run): one line that
    names the file and what to do."""


class RunWriter:
    """Appends this process's case records to its own file in the run directory."""

    def __init__(self, run_dir: Path, writer: str) -> None:
        self.path = run_dir / "cases" / f"{writer}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._started = -1

    def started(self, fields: dict[str, Any]) -> None:
        """Note that a case started (``cases/<writer>.started``), before it runs: a case that
        started and never finished is found at the end and counted as an error."""
        if self._started < 0:
            path = self.path.with_suffix(".started")
            self._started = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._started, pydantic_core.to_json(fields, fallback=str) + b"\n")

    def append(self, record: CaseRecord | dict[str, Any]) -> None:
        """One line; a dict is a record's ``model_dump()`` (``CaseState.record_fields``).

        ``fallback=str``: a dataset field of an exotic type is kept as text, never a crash.
        """
        if isinstance(record, dict):
            line = pydantic_core.to_json(record, fallback=str)
        else:
            line = record.model_dump_json(fallback=str).encode("utf-8")
        os.write(self._fd, line + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._started >= 0:
            os.close(self._started)
            self._started = -1


def write_json_atomic(path: Path, model: BaseModel) -> None:
    """Write-then-rename, so a reader never sees half a file (nor a temporary one left
    behind when the write fails: a full disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(model.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_collected(run_dir: Path, writer: str, nodeids: Iterable[str]) -> None:
    """The eval cases this process collected (``cases/<writer>.collected``): at the end, those
    that neither finished nor started are named as not run."""
    path = run_dir / "cases" / f"{writer}.collected"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{nodeid}\n" for nodeid in nodeids), encoding="utf-8")


def not_run(run_dir: Path, seen: Iterable[CaseRecord]) -> list[str]:
    """Collected eval cases with no record (finished or unfinished): the session stopped
    before them (-x, Ctrl-C, a write that failed)."""
    done = {case.nodeid for case in seen}
    missing: dict[str, None] = {}
    for path in sorted((run_dir / "cases").glob("*.collected")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        missing.update((line, None) for line in lines if line and line not in done)
    return list(missing)


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    write_json_atomic(run_dir / "run.json", info)


def read_cases(run_dir: Path, *, slim: bool = False) -> Iterator[CaseRecord]:
    """Every case of a run, from all its writers, each once: when a test ran again in the
    same run (pytest-rerunfailures), its latest attempt replaces the earlier ones: a rerun
    is not an extra sample. A torn last line is skipped; see ``_read_case_file``.

    ``slim``: for summaries and comparisons, which hold every case of a run at once. The
    records leave out ``input``, ``item``, ``completion_metadata`` and ``trajectory``, and
    records share
    what is the same in all of them (their sets of set fields, fingerprints, gates): half
    of a parsed record's memory is pydantic's per-instance set of field names.
    """
    shared: dict[Any, Any] | None = {} if slim else None
    latest: dict[str, CaseRecord] = {}
    for path in sorted((run_dir / "cases").glob("*.jsonl")):
        for record in _read_case_file(path, shared):
            earlier = latest.get(record.nodeid)
            if earlier is None or earlier.finished_at <= record.finished_at:
                latest[record.nodeid] = record
    yield from latest.values()


def _read_case_file(path: Path, shared: dict[Any, Any] | None = None) -> Iterator[CaseRecord]:
    """A writer's cases. Its last line may be torn (the process died while writing it) and is
    then skipped; any other line that cannot be read makes the file unreadable, and a line
    written by a newer format is refused: never read as fewer cases than there are."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise RunUnreadable(f"{path}: cannot be read: {exc.strerror or exc}") from None
    with handle:
        lines = (raw for raw in handle if raw.strip())
        pending = next(lines, None)
        number = 0
        while pending is not None:
            raw, pending = pending, next(lines, None)
            number += 1
            record = _case_line(path, raw, number, last=pending is None)
            if record is None:
                continue
            if shared is not None:
                _slim(record, shared)
            yield record


def _case_line(path: Path, raw: bytes, number: int, *, last: bool) -> CaseRecord | None:
    try:
        record = CaseRecord.model_validate_json(raw)
    except ValidationError as exc:
        newer = _newer_version(raw, SCHEMA_VERSION)
        if newer is not None:
            raise RunUnreadable(_newer_message(path, newer)) from None
        if last and not raw.rstrip().endswith(b"}"):
            return None  # torn by a crash while it was being written
        raise RunUnreadable(
            f"{path}: case {number}: not a case record ({_first_error(exc, 'the line')}); "
            "the file is corrupt: run the evals again"
        ) from None
    if record.schema_version > SCHEMA_VERSION:
        raise RunUnreadable(_newer_message(path, record.schema_version))
    return record


def _newer_version(raw: bytes, newest: int) -> int | None:
    """The format version a file says it has, when newer than ``newest``."""
    try:
        version = json.loads(raw).get("schema_version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) and version > newest else None


def _first_error(exc: ValidationError, whole: str) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or whole}: {first['msg']}"


def _newer_message(path: Path, version: int) -> str:
    return (
        f"{path}: written in run format {version} by a newer pytest-modelopt; this one "
        f"({__version__}) reads formats up to {SCHEMA_VERSION}: upgrade pytest-modelopt "
        "(pip install -U pytest-modelopt) to read it"
    )


def read_model(path: Path, model: type[M]) -> M:
    """A versioned JSON file of the run (run.json, summary.json, report.json): refused with
    one clear line when it cannot be read or was written by a newer format."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunUnreadable(f"{path}: cannot be read: {exc.strerror or exc}") from None
    newest = model.model_fields["schema_version"].default
    try:
        found = model.model_validate_json(raw)
    except ValidationError as exc:
        newer = _newer_version(raw, newest)
        if newer is not None:
            raise RunUnreadable(_newer_message(path, newer)) from None
        raise RunUnreadable(
            f"{path}: not a readable {path.name} ({_first_error(exc, 'the file')}); it may be "
            "truncated or not written by pytest-modelopt: run the evals again to make a new one"
        ) from None
    version = getattr(found, "schema_version", newest)
    if version > newest:
        raise RunUnreadable(_newer_message(path, version))
    return found


def _slim(record: CaseRecord, shared: dict[Any, Any]) -> None:
    record.input = record.item = record.completion_metadata = record.trajectory = None
    record.fingerprint = shared.setdefault(
        ("fingerprint", *sorted(record.fingerprint.items())), record.fingerprint
    )
    record.fail_on = shared.setdefault(("fail_on", *record.fail_on), record.fail_on)
    for model in (record, record.usage, record.error, *record.grades):
        if model is not None:
            _share_fields_set(model, shared)


def _share_fields_set(model: BaseModel, shared: dict[Any, Any]) -> None:
    # Only exclude_unset dumps read this set, and no reader of slim records makes them.
    fields = model.__pydantic_fields_set__
    last = shared.get(type(model))  # records of a run mostly set the same fields
    if last is None or last != fields:
        last = shared[type(model)] = shared.setdefault((type(model), frozenset(fields)), fields)
    object.__setattr__(model, "__pydantic_fields_set__", last)


def read_run_info(run_dir: Path) -> RunInfo:
    """The run's run.json; RunUnreadable when it cannot be read."""
    return read_model(run_dir / "run.json", RunInfo)


def unfinished_cases(
    run_dir: Path,
    finished: Iterable[CaseRecord],
    started_here: Iterable[dict[str, Any]] = (),
    here: str = "main",
) -> list[CaseRecord]:
    """Cases that started and have no record: their process died mid-case (a crash,
    ``kill -9``, out of memory) or the session was interrupted. Each is an error.

    xdist workers note each start in ``cases/<writer>.started`` (their death is only seen
    by the controller); the process that finishes the run knows its own in memory
    (``started_here``): a serial run pays no write for it.
    """
    done = {case.nodeid for case in finished}
    started: list[tuple[str, dict[str, Any]]] = [(here, fields) for fields in started_here]
    for path in sorted((run_dir / "cases").glob("*.started")):
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for raw in lines:
            try:
                fields = json.loads(raw)
            except ValueError:
                continue  # torn by the crash itself
            if isinstance(fields, dict):
                started.append((path.stem, fields))
    missing: dict[str, CaseRecord] = {}
    for writer, fields in started:
        nodeid = fields.get("nodeid")
        if not isinstance(nodeid, str) or nodeid in done or nodeid in missing:
            continue
        message = (
            f"the case started on {writer} and never finished: the process running it "
            "died (a crash, kill -9, out of memory) or the session was interrupted"
        )
        error = {"kind": "unfinished", "message": message}
        try:
            missing[nodeid] = CaseRecord.model_validate(
                {**fields, "status": "error", "error": error}
            )
        except ValidationError:
            continue
    return list(missing.values())


def sort_cases(cases: Iterable[CaseRecord]) -> list[CaseRecord]:
    """A canonical order, so serial and xdist runs give byte-identical summaries."""
    return sorted(cases, key=lambda c: (c.eval, c.model, c.case_id, c.sample, c.nodeid))


class RunNotFound(Exception):
    """A run reference that names no run; the message lists what exists."""


def resolve_run(ref: str, runs_dir: Path) -> Path:
    """A run directory from a path, a run id, or ``latest``.

    A path to a ``latest`` pointer file (``shard-0/.modelopt/runs/latest``, as CI shards
    hand their runs over) names the run it points to.
    """
    path = Path(ref)
    if path.is_file() and path.name in ("run.json", "summary.json"):
        return path.parent
    if (path / "run.json").is_file():
        return path
    if path.name == "latest" and path.is_file():
        target = path.parent / path.read_text(encoding="utf-8").strip()
        if (target / "run.json").is_file():
            return target
        raise RunNotFound(
            f"{path} points to {target.name!r}, which is not a run under {path.parent}"
        )
    if ref == "latest":
        pointer = runs_dir / "latest"
        if pointer.is_file():
            return runs_dir / pointer.read_text(encoding="utf-8").strip()
        raise RunNotFound(f"no runs yet under {runs_dir}: run your evals with pytest first")
    for candidate in (runs_dir / ref, runs_dir.parent / "saved" / ref):
        if (candidate / "run.json").is_file():
            return candidate
    known = sorted(p.name for p in runs_dir.glob("*/run.json")) if runs_dir.is_dir() else []
    shown = ", ".join(p for p in known[-5:]) or "none"
    raise RunNotFound(
        f"no run {ref!r} (a run directory, a run id, a name saved with --eval-save, or "
        f"'latest'); recent: {shown}"
    )


def finished_cases(run_dir: Path) -> dict[str, CaseRecord]:
    """Cases of a run that need no re-run (errors do), by node id: what --eval-resume keeps."""
    return {c.nodeid: c for c in read_cases(run_dir) if c.status != "error"}


def merge_runs(run_dirs: list[Path], out_dir: Path, run_id: str) -> list[str]:
    """Combine shards into one run directory; a case run twice keeps its latest record.

    Returns warnings (duplicates, differing plugin versions) for the caller to show.
    """
    warnings: list[str] = []
    infos = [read_run_info(d) for d in run_dirs]
    versions = {i.plugin_version for i in infos}
    if len(versions) > 1:
        warnings.append(f"runs come from different plugin versions: {sorted(versions)}")
    latest: dict[tuple[str, str, str, int], CaseRecord] = {}
    for run_dir in run_dirs:
        for case in read_cases(run_dir):
            key = (case.nodeid, case.model, case.case_id, case.sample)
            if key in latest:
                warnings.append(f"{case.nodeid} appears in more than one run; kept the latest")
                if latest[key].finished_at > case.finished_at:
                    continue
            latest[key] = case
    first = infos[0]
    models = sorted({m for i in infos for m in i.models})
    info = first.model_copy(update={"run_id": run_id, "models": models})
    write_run_info(out_dir, info)
    writer = RunWriter(out_dir, "merged")
    try:
        for case in sort_cases(latest.values()):
            writer.append(case)
    finally:
        writer.close()
    return warnings
