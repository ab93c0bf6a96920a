"""``modelopt distill``, ``modelopt finetune`` and ``modelopt jobs``: the optimize commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import find_project, load_settings
from ..model.client import ModelClient
from ..records.store import read_cases, read_run_info, resolve_run
from .backends.export import ExportBackend
from .flow import Finetuner, plugin_hooks, preflight
from .jobs import BackendError, read_job, read_manifest, write_job
from .launch import LaunchRefused, launches
from .stored import StoredCompletionsError, stored_records
from .training_data import TrainingDataError

if TYPE_CHECKING:
    import argparse


def _finetuner(args: argparse.Namespace) -> Finetuner:
    cli: dict[str, Any] = {"yes": True if getattr(args, "yes", False) else None}
    for key in ("finetune_backend", "finetune_method"):
        cli[key] = getattr(args, key, None)
    settings = load_settings(find_project(Path.cwd()), cli)
    return Finetuner(settings, plugin_hooks())


def _records(args: argparse.Namespace, finetuner: Finetuner) -> tuple[list[Any], str | None]:
    if args.source == "stored":
        settings = finetuner.settings
        client = ModelClient(
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=2,
            headers=settings.request_headers(),
        )
        records = stored_records(client.sdk(), evals=args.eval or (), model=args.teacher)
        for reason, count in sorted(records.skipped.items()):
            print(f"stored completions left out: {count} ({reason})")
        for note in records.notes:
            print(f"stored completions: {note}")
        return list(records), "stored-completions"
    run_dir = resolve_run(args.run, finetuner.settings.dir / "runs")
    return list(read_cases(run_dir)), read_run_info(run_dir).run_id


def cmd_distill(args: argparse.Namespace) -> int:
    """Build, validate, and (unless --dry-run) launch; print what to run next."""
    finetuner = _finetuner(args)
    base_model = args.student or args.base_model
    try:
        records, source = _records(args, finetuner)
        prepared = finetuner.prepare(
            records,
            base_model=base_model,
            method=args.finetune_method,
            teacher=args.teacher,
            source_run=source,
            out=Path(args.out) if args.out else None,
            evals=args.eval,
            min_score=args.min_score,
            answers_from=args.answers_from,
        )
    except (TrainingDataError, StoredCompletionsError) as exc:
        print(f"modelopt {args.cmd}: {exc}", file=sys.stderr)
        return 2
    backend = args.finetune_backend or finetuner.settings.finetune.backend
    for line in prepared.lines(backend):
        print(line)
    if args.dry_run:
        try:  # what the launch would state, or why it would be refused
            notes = preflight(finetuner.backend(backend), prepared.manifest)
        except BackendError as exc:
            notes = [f"  note: a launch on {backend} would be refused: {exc}"]
        for line in notes:
            print(line)
        print(f"dry run: nothing launched; the files and manifest are in {prepared.launch_dir}")
        return 0 if prepared.report.ok else 1
    try:
        job = finetuner.launch(prepared, backend=backend, follow=args.follow)
    except (LaunchRefused, BackendError) as exc:
        print(f"modelopt {args.cmd}: {exc}", file=sys.stderr)
        return 1
    for line in finetuner.next_steps(job, prepared):
        print(f"next: {line}")
    return 0 if job.status not in ("failed", "cancelled") else 1


def _job_dirs(finetuner: Finetuner, ref: str | None) -> list[Path]:
    if ref is None:
        return [d for d, _, job in launches(finetuner.root) if job is not None]
    path = Path(ref)
    if (path / "job.json").is_file():
        return [path]
    for launch_dir, _, job in launches(finetuner.root):
        if job is not None and ref in (job.id, launch_dir.name, job.fine_tuned_model):
            return [launch_dir]
    raise BackendError(f"no job {ref!r} under {finetuner.root}: see `modelopt jobs list`")


def cmd_jobs(args: argparse.Namespace) -> int:
    finetuner = _finetuner(args)
    try:
        if args.action == "register":
            return _register(finetuner, args)
        if args.action == "list":
            for launch_dir, manifest, job in launches(finetuner.root):
                state = f"{job.backend} {job.id} {job.status}" if job else "not launched"
                model = f" -> {job.fine_tuned_model}" if job and job.fine_tuned_model else ""
                print(
                    f"{launch_dir.name}: {manifest.method} {manifest.base_model}, "
                    f"{manifest.examples} examples, {len(manifest.holdout_cases)} held out; "
                    f"{state}{model}"
                )
            return 0
        dirs = _job_dirs(finetuner, args.job)
        if args.job is None and args.action == "cancel":
            raise BackendError(
                "cancel which job? modelopt jobs cancel JOB (see `modelopt jobs list`)"
            )
        if not dirs:
            raise BackendError(
                f"no launched job under {finetuner.root}: launch one with "
                "`modelopt distill --student MODEL --yes`"
            )
        # follow with no JOB: the newest launch's job (launches() lists newest first)
        job = read_job(dirs[0])
        assert job is not None
        if args.action == "cancel":
            job = finetuner.backend(job.backend).cancel(job)
        else:
            job = finetuner.follow(job, timeout=args.timeout)
        write_job(dirs[0], job)
        print(
            f"{job.backend} job {job.id}: {job.status}" + (f" ({job.error})" if job.error else "")
        )
        if job.fine_tuned_model:
            print(f"model: {job.fine_tuned_model}")
        return 0 if job.status not in ("failed",) else 1
    except BackendError as exc:
        print(f"modelopt jobs: {exc}", file=sys.stderr)
        return 1


def _register(finetuner: Finetuner, args: argparse.Namespace) -> int:
    """A model trained elsewhere on an exported set: record it, so its runs skip its cases."""
    launch_dir = Path(args.job)
    manifest = read_manifest(launch_dir)
    if not args.model:
        raise BackendError("register needs the trained model's name: jobs register DIR MODEL")
    job = read_job(launch_dir) or ExportBackend.job_for(manifest, launch_dir)
    job = job.model_copy(update={"fine_tuned_model": args.model, "status": "succeeded"})
    write_job(launch_dir, job)
    print(f"{args.model} trained on {len(manifest.trained_cases)} cases of {launch_dir}")
    return 0


def add_commands(sub: Any) -> None:
    for name, role in (("distill", "student"), ("finetune", "base-model")):
        what = (
            "train a student on a teacher's passing answers"
            if name == "distill"
            else "fine-tune a model on a run's graded answers (sft, dpo) or its graders (rft)"
        )
        command = sub.add_parser(name, help=what)
        command.add_argument("run", nargs="?", default="latest", help="a run (as in compare)")
        command.add_argument(f"--{role}", required=True, help="the model to train")
        command.add_argument("--teacher", help="whose answers to learn from (default: the only)")
        command.add_argument("--backend", dest="finetune_backend", help="openai, local, export")
        command.add_argument(
            "--method", dest="finetune_method", choices=["sft", "dpo", "rft"], help="default: sft"
        )
        command.add_argument("--eval", action="append", help="only these evals (globs)")
        command.add_argument("--min-score", type=float, help="only answers scoring this much")
        command.add_argument(
            "--answers-from",
            metavar="FIELD",
            help="sft on labelled data: this dataset field is every case's answer",
        )
        command.add_argument("--out", help="launch directory (default .modelopt/finetune/NAME)")
        command.add_argument("--dry-run", action="store_true", help="write and check; no launch")
        command.add_argument("--yes", action="store_true", help="launch a paid job without asking")
        command.add_argument("--follow", action="store_true", help="wait for the job to finish")
        command.add_argument(
            "--source",
            choices=["records", "stored"],
            default="records",
            help="run records, or OpenAI stored completions (runs made with store = true)",
        )
        command.set_defaults(fn=cmd_distill, student=None, base_model=None)

    jobs = sub.add_parser("jobs", help="list, follow, cancel or register fine-tuning jobs")
    jobs.add_argument("action", choices=["list", "follow", "cancel", "register"])
    jobs.add_argument("job", nargs="?", help="job id, launch directory or fine-tuned model")
    jobs.add_argument("model", nargs="?", help="register: the model trained from DIR")
    jobs.add_argument("--timeout", type=float, default=24 * 3600, help="follow: give up after")
    jobs.set_defaults(fn=cmd_jobs)
