"""One eval run: the object that wires the stages together, for pytest and the CLI alike.

An :class:`EvalRun` owns the run's identity (id, directory, writer), its checked
settings, the model client, the plan for declared completions, and the end of the run:
:meth:`EvalRun.finish` reads every writer's cases back from disk (the same code serially
and under xdist), summarises them, decides the verdict with the one policy
(:mod:`pytest_modelopt.verdict.judge`), writes the reports and runs the optimize stage's
after-run work. It owns no policy of its own.

It fails closed: anything that goes wrong while deciding the verdict or writing a report
is kept as a *problem* on the :class:`Outcome`, and a run with a problem fails, whatever
its verdict would have been. What can still be written is written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import __version__
from .collect.prompts import load_prompt
from .config import ConfigError, load_settings
from .generate.plan import Planner
from .graders.base import GraderError, from_openai
from .model.cache import ResponseCache
from .model.client import ModelClient
from .optimize.after_run import FineTunes, distill, find_fine_tunes, tag_stored_verdicts
from .records.ids import new_run_id, utcnow
from .records.labels import find_label_files, read_label_files
from .records.models import RunInfo
from .records.store import (
    RunWriter,
    not_run,
    read_cases,
    read_run_info,
    unfinished_cases,
    write_collected,
    write_json_atomic,
    write_run_info,
)
from .reports.write import write_reports
from .secrets import redact, redact_url
from .verdict.gates import GateError, calibration_policy, parse_gate
from .verdict.judge import Policy, compare_with, judge
from .verdict.summary import summarize

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from .collect.prompts import Prompt
    from .config import Settings
    from .graders.base import Grader
    from .model.types import RequestHook
    from .records.labels import Label
    from .records.models import CaseRecord, RunSummary
    from .verdict.document import EvalReport


def settings_for(
    rootdir: Path, cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The merged settings (config file < environment < command line), with their gates and
    graders checked: a bad one is a ConfigError that names the surface it came from."""
    settings = load_settings(rootdir, cli, environ)
    for key, expressions in (("fail_on", settings.fail_on), ("gates", settings.gates.fail_on)):
        field = "fail_on" if key == "fail_on" else "gates.fail_on"
        for expression in expressions:
            try:
                parse_gate(expression)
            except GateError as exc:
                raise ConfigError(f"{settings.source_of(key)}: {field}: {exc}") from None
    try:
        calibration_policy(settings.calibration, settings.source_of("calibration"))
    except GateError as exc:
        raise ConfigError(str(exc)) from None
    named_graders(settings)
    settings.request_headers()  # a header naming an unset variable: said now, with its source
    return settings


def labels_for(
    settings: Settings, rootdir: Path, invocation_dir: Path | None = None
) -> list[Label]:
    """The human labels the settings name (``labels``): globs from the config file are
    relative to the project's root, from the command line or the environment to the
    directory the run started in. LabelsError names every bad line."""
    if not settings.labels:
        return []
    root = rootdir if settings.from_file("labels") else (invocation_dir or rootdir)
    return read_label_files(find_label_files(settings.labels, root))


def named_graders(settings: Settings) -> dict[str, Grader]:
    """The configured graders (``[tool.modelopt.graders]``), built; names default to keys."""
    built = {}
    for name, data in settings.graders.items():
        try:
            built[name] = from_openai({"name": name, **data})
        except GraderError as exc:
            raise ConfigError(f"{settings.source_of('graders')}: graders: {name}: {exc}") from None
    return built


@dataclass
class Outcome:
    """What the end of a run produced, for the terminal summary and the exit status."""

    summary: RunSummary | None = None
    report: EvalReport | None = None
    problems: list[str] = field(default_factory=list)  # each one fails the run
    notes: list[str] = field(default_factory=list)
    store_warnings: list[str] = field(default_factory=list)
    distill_lines: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # collected eval cases never started

    @property
    def failed(self) -> bool:
        """The verdict is fail, or it could not be decided (fail closed)."""
        return bool(self.problems) or (self.report is not None and self.report.verdict == "fail")


class EvalRun:
    def __init__(
        self,
        settings: Settings,
        *,
        rootdir: Path,
        run_id: str | None = None,
        started_at: str | None = None,
        writer: str = "main",
        on_request: RequestHook | None = None,
        invocation_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.rootdir = rootdir
        # report paths given on the command line or in the environment are relative to the
        # directory the run was started from, as --junitxml's is
        self.invocation_dir = invocation_dir or rootdir
        self.run_id = run_id or new_run_id()
        self.started_at = started_at or utcnow()
        self.writer_name = writer
        self.on_request = on_request
        self.named_graders = named_graders(settings)
        self.structured_output_level: dict[str, int] = {}  # shared by every case's judges
        self.baseline_dir: Path | None = None
        self.resume_from: Path | None = None
        self.fine_tunes = FineTunes()
        self.outcome: Outcome | None = None
        self.planner = Planner(settings, lambda: self.client, self.prompt, self.run_dir)
        self._client: ModelClient | None = None
        self._writer: RunWriter | None = None
        self._prompts: dict[tuple[Path, str | None], Prompt] = {}
        self._inflight: dict[str, dict[str, Any]] = {}  # cases started here, not recorded

    # -- what the run reads and calls ---------------------------------------------------

    @property
    def runs_dir(self) -> Path:
        return self.settings.dir / "runs"

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_id

    @property
    def client(self) -> ModelClient:
        if self._client is None:
            settings = self.settings
            cache = None
            if settings.record != "off":
                cache = ResponseCache(settings.dir / "cache", settings.record)
            self._client = ModelClient(
                cache=cache,
                base_url=settings.base_url,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
                provider=settings.provider,
                prices=settings.prices,
                on_request=self.on_request,
                store=settings.store,
                transport=settings.transport,
                headers=settings.request_headers(),
            )
        return self._client

    def prompt(self, path: Path, display: str | None) -> Prompt:
        """A prompt file, loaded once per run (not stat-ed again for every case)."""
        prompt = self._prompts.get((path, display))
        if prompt is None:
            prompt = self._prompts[path, display] = load_prompt(path, display=display)
        return prompt

    def find_fine_tunes(self) -> None:
        self.fine_tunes = find_fine_tunes(self.settings, self.rootdir)

    # -- writing cases ------------------------------------------------------------------

    def start(self) -> None:
        """Write run.json with the first case, so sessions without evals leave no run behind."""
        info = RunInfo(
            run_id=self.run_id,
            started_at=self.started_at,
            plugin_version=__version__,
            models=list(self.settings.models),
            base_url=redact_url(self.settings.base_url),
            rootdir=str(self.rootdir),
            git_commit=_git_commit(self.rootdir),
            notes=list(self.fine_tunes.notes.values()),
        )
        write_run_info(self.run_dir, info)
        (self.runs_dir / "latest").write_text(self.run_id + "\n", encoding="utf-8")

    def write(self, record: CaseRecord | dict[str, Any]) -> None:
        """Append a case (a CaseRecord, or its ``model_dump()``) to this writer's file."""
        self._open().append(record)
        nodeid = record["nodeid"] if isinstance(record, dict) else record.nodeid
        self._inflight.pop(nodeid, None)

    def collected(self, nodeids: list[str]) -> None:
        """Note the eval cases this process will run, so that those that never do are named."""
        self._open()
        write_collected(self.run_dir, self.writer_name, nodeids)

    def started(self, fields: dict[str, Any]) -> None:
        """Note that a case started, before it runs: an xdist worker on disk (only the
        controller sees it die; ``RunWriter.started``), the process that ends the run in
        memory."""
        if self.writer_name == "main":
            self._inflight[fields["nodeid"]] = fields
        else:
            self._open().started(fields)

    def _open(self) -> RunWriter:
        if self._writer is None:
            if not (self.run_dir / "run.json").exists():
                self.start()
            self._writer = RunWriter(self.run_dir, self.writer_name)
        return self._writer

    def close(self) -> None:
        """Stop generating and close this process's files and connections."""
        self.planner.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._client is not None:
            self._client.close()

    # -- the end of the run -------------------------------------------------------------

    def cache_errors(self) -> list[str]:
        """Answers of this process that could not be kept in the response cache."""
        return list(self._client.cache_errors) if self._client is not None else []

    def finish(self, hook: Any = None, cache_errors: list[str] | None = None) -> Outcome:
        """Summarise every writer's cases, decide the verdict, write the reports.

        Each step that fails adds a problem to the outcome (the run then fails) and the
        steps that do not depend on it still run. ``cache_errors``: the xdist workers'.
        """
        lost = [*self.cache_errors(), *(cache_errors or [])]
        self.close()
        outcome = self.outcome = Outcome()
        if lost:
            outcome.notes.append(
                f"{len(lost)} answers could not be kept in the response cache ({lost[0]}): "
                "they were used, not recorded; a later run pays for them again"
            )
        if not (self.run_dir / "run.json").exists():
            return outcome  # no eval ran: nothing to decide
        secrets = self._secrets()
        try:
            info = read_run_info(self.run_dir)
            cases = list(read_cases(self.run_dir, slim=True))
            unfinished = unfinished_cases(self.run_dir, cases, self._inflight.values())
            cases += unfinished  # counted, and kept with the run for later readers if it can
            self._step(outcome, "keep the unfinished cases", self._keep, unfinished)
            outcome.not_run = not_run(self.run_dir, cases)
            summary = outcome.summary = summarize(info, cases)
        except Exception as exc:
            outcome.problems.append(
                f"could not summarise the run {self.run_dir}: {_describe(exc, secrets)}"
            )
            return outcome
        self._step(
            outcome, "write summary.json", write_json_atomic, self.run_dir / "summary.json", summary
        )
        try:
            report = outcome.report = self._judge(summary, cases)
        except Exception as exc:
            outcome.problems.append(f"could not decide the verdict: {_describe(exc, secrets)}")
            return outcome
        self._step(
            outcome, "write report.json", write_json_atomic, self.run_dir / "report.json", report
        )
        settings = self.settings
        written = write_reports(
            report,
            json_path=self._out("json", settings.json_report),
            md_path=self._out("md", settings.md),
            html_path=self._out("html", settings.html),
            run_dir=self.run_dir,
            # a baseline model's cases are this run's own
            baseline_dir=self.baseline_dir or (self.run_dir if settings.baseline_model else None),
        )
        outcome.problems += written.problems
        outcome.notes += written.notes
        if settings.save:
            self._step(outcome, f"save the run as {settings.save!r}", self.save, settings.save)
        if settings.store:
            outcome.store_warnings = tag_stored_verdicts(self.client, self.run_dir)
        if settings.distill_to:
            outcome.distill_lines = distill(
                settings, hook, self.run_dir, passed=not outcome.failed, secrets=secrets
            )
        return outcome

    def _judge(self, summary: RunSummary, cases: list[CaseRecord]) -> EvalReport:
        policy = Policy.from_settings(self.settings)
        baseline = None
        if self.baseline_dir is not None:
            try:
                baseline = (
                    read_run_info(self.baseline_dir),
                    list(read_cases(self.baseline_dir, slim=True)),
                )
            except Exception as exc:
                raise BaselineUnreadable(
                    f"the baseline {self.baseline_dir} cannot be read "
                    f"({_describe(exc, self._secrets())}); save a new one with --eval-save or "
                    "choose another with --eval-baseline"
                ) from None
        comparison = compare_with(
            summary, cases, policy, baseline=baseline, baseline_model=self.settings.baseline_model
        )
        labels = labels_for(self.settings, self.rootdir, self.invocation_dir)
        return judge(summary, comparison, policy, cases=cases, labels=labels)

    def _keep(self, records: list[CaseRecord]) -> None:
        try:
            for record in records:
                self.write(record)
        finally:
            self.close()

    def _step(self, outcome: Outcome, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            outcome.problems.append(f"could not {what}: {_describe(exc, self._secrets())}")

    def _out(self, key: str, path: Path | None) -> Path | None:
        """A report's path: from the config file relative to the project's root (where the
        file is), from the command line or the environment relative to the current
        directory."""
        if path is None or path.is_absolute():
            return path
        return (self.rootdir if self.settings.from_file(key) else self.invocation_dir) / path

    def _secrets(self) -> tuple[str, ...]:
        return self._client.secrets() if self._client is not None else ()

    def save(self, name: str) -> Path:
        """Keep this run under saved/NAME (replacing an older one) for later comparisons."""
        saved = (self.settings.dir / "saved").resolve()
        target = saved / name
        if target.resolve().parent != saved:  # never delete outside saved/ (config checks too)
            raise ValueError(f"--eval-save: {name!r} is not a plain name")
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.run_dir, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


class BaselineUnreadable(Exception):
    """The baseline run exists but cannot be read (truncated, corrupt, foreign)."""


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    if isinstance(exc, BaselineUnreadable):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
    return redact(f"{type(exc).__name__}: {text}", secrets)


def _git_commit(rootdir: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=rootdir,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
