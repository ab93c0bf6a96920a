"""From a run to a launched job: build, validate, write, confirm, launch, follow.

The same steps serve ``modelopt distill`` / ``modelopt finetune``, ``--eval-distill-to`` at
the end of a session and the ``finetune`` fixture, so each says the same things and stops
at the same places: nothing is sent before the files validate, a dry run stops after
writing them, and a paid job needs a yes (``--yes``, ``auto_launch``, or a person at a
terminal) after its estimated cost was shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..costs import money
from ..images import ImageError
from ..images import inline as inline_images
from ..records.ids import utcnow
from ..records.store import write_json_atomic
from .backends import FREE
from .jobs import JobInfo, Manifest, ValidationReport, files_sha256, read_job, read_manifest
from .training_data import BUILDERS, Selection, TrainingSet
from .validate import validate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ..records.models import CaseRecord
    from .jobs import Backend, Method


class LaunchRefused(Exception):
    """Not launched, on purpose (dry run, no confirmation, a hook's veto): not a failure."""


@dataclass
class Prepared:
    """A training set on disk, validated, with its manifest: ready for any backend."""

    manifest: Manifest
    launch_dir: Path
    report: ValidationReport
    data: TrainingSet
    notes: list[str] = field(default_factory=list)

    def lines(self, backend: str | None = None) -> list[str]:
        """What a person should read before a launch (and after a dry run)."""
        m, r = self.manifest, self.report
        teacher = f" from {m.teacher}'s answers" if m.teacher else ""
        out = [
            f"{m.method} training set for {m.base_model}{teacher} (run {m.source_run}): "
            f"{r.examples} examples from {len(m.trained_cases)} cases; "
            f"{len(m.holdout_cases)} cases held out ({m.holdout_fraction:.0%}); "
            f"written to {self.launch_dir}",
        ]
        if self.data.validation:
            out.append(f"  validation file: {len(self.data.validation)} examples")
        for reason, count in sorted(self.data.skipped.items()):
            out.append(f"  left out: {count} ({reason})")
        out += [f"  note: {note}" for note in self.notes + self.data.notes]
        cost = (
            "free (trains on this machine)"
            if backend in ("local",)
            else (
                money(r.estimated_cost_usd)
                if r.estimated_cost_usd is not None
                else "unknown (set [tool.modelopt.finetune.training_prices] for this model)"
            )
        )
        epochs = f"{r.n_epochs} epoch{'' if r.n_epochs == 1 else 's'}"
        out.append(f"  ~{r.tokens:,} training tokens x {epochs}; estimated cost: {cost}")
        for issue in r.issues:
            where = f"{m.train_file}:{issue.line}: " if issue.line else ""
            out.append(f"  {issue.level}: {where}{issue.message} [{issue.code}]")
        return out


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "model"


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """One example a line, each image reference read into its data URL (OpenAI's vision
    fine-tuning format takes https or data URLs): the file is whole on its own, and only
    one example's images are in memory at a time. An image that cannot be read stays a
    reference: the validation report has it as an error, and the file is there to read."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            with contextlib.suppress(ImageError):
                row = _with_images(row)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _with_images(row: dict[str, Any]) -> dict[str, Any]:
    source = row.get("input")
    if isinstance(source, dict):  # DPO: the prompt's messages are under input
        return {**row, "input": inline_images(source)}
    return inline_images(row)


def prepare(
    records: Iterable[CaseRecord],
    *,
    method: Method,
    base_model: str,
    selection: Selection,
    root: Path,
    source_run: str | None = None,
    out: Path | None = None,
    hyperparameters: dict[str, Any] | None = None,
    training_prices: dict[str, float] | None = None,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None = None,
) -> Prepared:
    """Build and validate the set, then write it (even when invalid: to read and fix)."""
    data = BUILDERS[method](records, selection, hook)
    params = dict(hyperparameters or {})
    epochs = params.get("n_epochs")
    report = validate(
        method,
        data.examples,
        base_model=base_model,
        n_epochs=epochs if isinstance(epochs, int) else None,
        training_prices=training_prices,
    )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    files = [staging / "train.jsonl"]
    _write_jsonl(files[0], data.examples)
    validation_file = None
    if data.validation:
        validation_file = "validation.jsonl"
        files.append(staging / validation_file)
        _write_jsonl(files[-1], data.validation)
    grader_file = None
    if data.grader is not None:
        grader_file = "grader.json"
        files.append(staging / grader_file)
        files[-1].write_text(json.dumps(data.grader, indent=2) + "\n", encoding="utf-8")
    sha = files_sha256(files)
    name = f"{method}-{slug(base_model)}-{sha[:8]}"
    launch_dir = out or root / name
    manifest = Manifest(
        name=slug(launch_dir.name),
        method=method,
        base_model=base_model,
        teacher=selection.teacher if method != "rft" else None,
        source_run=source_run,
        evals=sorted(data.evals),
        holdout_fraction=selection.holdout_fraction,
        split_salt=selection.salt,
        trained_cases=sorted(set(data.case_ids)),
        holdout_cases=sorted(data.holdout_cases),
        validation_file=validation_file,
        grader_file=grader_file,
        examples=len(data.examples),
        dataset_sha256=sha,
        hyperparameters=params,
        validation=report,
        created_at=utcnow(),
    )
    write_json_atomic(staging / "manifest.json", manifest)
    if launch_dir.exists():
        for leftover in ("train.jsonl", "validation.jsonl", "grader.json", "manifest.json"):
            (launch_dir / leftover).unlink(missing_ok=True)
    launch_dir.mkdir(parents=True, exist_ok=True)
    for path in staging.iterdir():
        os.replace(path, launch_dir / path.name)
    shutil.rmtree(staging, ignore_errors=True)
    return Prepared(manifest, launch_dir, report, data)


def interactive() -> bool:
    """A person can answer: a terminal on stdin and not a CI runner."""
    return sys.stdin.isatty() and not os.environ.get("CI")


def confirm_launch(
    prepared: Prepared,
    backend: str,
    *,
    yes: bool,
    auto_launch: bool,
    ask: Callable[[str], str] | None = None,
    notices: Sequence[str] = (),
) -> bool:
    """Raise LaunchRefused unless a paid launch was agreed to; free backends just go.

    True when a person was asked: the question then carries the backend's ``notices``
    (OpenAI's end dates) above it, so the answer is given knowing them.
    """
    if not prepared.report.ok:
        raise LaunchRefused(
            f"the training set has errors (above): fix the records or the filters, then run "
            f"again; the files are in {prepared.launch_dir}"
        )
    if backend in FREE or yes or auto_launch:
        return False
    if ask is None and not interactive():
        raise LaunchRefused(
            f"not launching a paid {backend} job from a non-interactive run: pass --yes, or "
            "set auto_launch = true under [tool.modelopt.finetune]"
        )
    question = f"launch this {backend} job for {prepared.manifest.base_model}? [y/N] "
    answer = (ask or input)("".join(f"{line}\n" for line in notices) + question)
    if answer.strip().lower() not in ("y", "yes"):
        raise LaunchRefused("not launched (answered no)")
    return True


def launch(
    prepared: Prepared,
    backend: Backend,
    *,
    veto: Callable[[Manifest, Path], bool] | None = None,
) -> JobInfo:
    """Hand the set to the backend; ``veto`` (the launch hook) may stop or adjust it."""
    if veto is not None and not veto(prepared.manifest, prepared.launch_dir):
        raise LaunchRefused("not launched: a pytest_modelopt_finetune_launch hook vetoed it")
    write_json_atomic(prepared.launch_dir / "manifest.json", prepared.manifest)  # adjusted
    return backend.launch(prepared.manifest, prepared.launch_dir)


def launches(root: Path) -> list[tuple[Path, Manifest, JobInfo | None]]:
    """Every launch directory under ``root``, newest first."""
    found = []
    for path in root.glob("*/manifest.json"):
        try:
            found.append((path.parent, read_manifest(path.parent), read_job(path.parent)))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda entry: entry[1].created_at, reverse=True)


def trained_on(model: str, root: Path) -> tuple[Path, Manifest] | None:
    """The launch that produced ``model`` (its fine-tuned name, its checkpoint's path, or
    the job id a local checkpoint is served under), if known."""
    for launch_dir, manifest, job in launches(root):
        names = {job.id, job.fine_tuned_model, job.checkpoint_dir} if job else set()
        names |= set(job.checkpoints) if job else set()
        if model in names - {None}:
            return launch_dir, manifest
    return None
