"""One eval session's state: settings, the run on disk, the model client.

Kept free of pytest so the same object serves the plugin and the ``modelopt`` CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from . import __version__
from .cache import ResponseCache
from .client import ModelClient, RequestHook
from .prompts import Prompt, load_prompt
from .records import (
    CaseRecord,
    RunInfo,
    RunSummary,
    RunWriter,
    new_run_id,
    read_cases,
    read_run_info,
    utcnow,
    write_json_atomic,
    write_run_info,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .compare import Comparison
    from .config import Settings
    from .generate import CompletionGenerator, Job, Progress
    from .reports.document import EvalReport
    from .sender import Sender


class EvalSession:
    def __init__(
        self,
        settings: Settings,
        *,
        rootdir: Path,
        run_id: str | None = None,
        started_at: str | None = None,
        writer: str = "main",
        on_request: RequestHook | None = None,
    ) -> None:
        self.settings = settings
        self.rootdir = rootdir
        self.run_id = run_id or new_run_id()
        self.started_at = started_at or utcnow()
        self.writer_name = writer
        self.on_request = on_request
        self._client: ModelClient | None = None
        self._writer: RunWriter | None = None
        self.summary: RunSummary | None = None
        self.generator: CompletionGenerator | None = None
        self.sender: Sender | None = None  # started during collection (warm_sender)
        self.declared_so_far = 0
        self.worker_progress: list[Progress] = []  # from xdist workers, on the controller
        self.resume_from: Path | None = None
        self.baseline_dir: Path | None = None
        self.report: EvalReport | None = None
        self.finish_error: str | None = None
        self.named_graders = settings.named_graders()
        self.structured_output_level: dict[str, int] = {}  # shared by every case's judges
        self.holdout_notes: dict[str, str] = {}  # fine-tuned model -> what it is scored on
        self.trained_cases: dict[str, set[str]] = {}  # fine-tuned model -> its training cases
        self.distill_lines: list[str] = []  # --eval-distill-to's outcome, for the summary
        self.store_warnings: list[str] = []
        self._prompts: dict[tuple[Path, str | None], Prompt] = {}
        self._has_recordings: bool | None = None

    def prompt(self, path: Path, display: str | None) -> Prompt:
        """A prompt file, loaded once per session (not stat-ed again for every case)."""
        prompt = self._prompts.get((path, display))
        if prompt is None:
            prompt = self._prompts[path, display] = load_prompt(path, display=display)
        return prompt

    def warm_sender(self, declared: int) -> None:
        """Start the helper process that sends declared requests while pytest still
        collects, so its start-up (``import openai``) is not on the critical path: once
        ``declared`` completions were collected so far, as many as ``auto`` uses it for.

        With recordings in the cache the helper starts on the first miss instead: a run
        that replays everything then never pays for it.
        """
        self.declared_so_far += declared
        wanted = self.settings.record != "none" and self._wants_sender(self.declared_so_far)
        if self.sender is None and wanted:
            self.sender = self.client.sender()
            if not self.has_recordings():
                self.sender.warm_up()

    def has_recordings(self) -> bool:
        """Whether this run reads a cache that holds recordings (looked at once). Then the
        tests replay before anything is sent, and nothing that sends starts ahead."""
        if self._has_recordings is None:
            cache = self.client.cache
            self._has_recordings = cache is not None and cache.reads and cache.has_entries()
        return self._has_recordings

    def sender_for(self, jobs: int) -> Sender | None:
        """The helper process for ``jobs`` declared requests (the warmed-up one if any)."""
        if not self._wants_sender(jobs):
            return None
        return self.sender or self.client.sender()

    def _wants_sender(self, requests: int) -> bool:
        """A helper process pays off once there is a second core and enough requests."""
        setting = self.settings.sender
        return setting == "process" or (
            setting == "auto" and requests >= 16 and (os.cpu_count() or 1) > 1
        )

    def tag_stored_verdicts(self) -> None:
        """``store = true``: each stored completion learns its case's verdict, for
        ``modelopt distill --source stored`` (metadata is all a stored completion can change)."""
        from .client import redact
        from .optimize.stored import tag_verdicts

        tags = [
            (
                case.completion_id,
                {**(case.completion_metadata or {}), "modelopt_verdict": case.status},
            )
            for case in read_cases(self.run_dir)
            if case.completion_id
            and "modelopt_eval" in (case.completion_metadata or {})
            and case.status in ("passed", "failed", "error")
        ]
        if tags:
            try:
                self.store_warnings = tag_verdicts(self.client.sdk(), tags)
            except Exception as exc:  # a warning at the end of the session, not a crash
                message = redact(str(exc), self.client.secrets())
                self.store_warnings = [f"could not tag stored completions: {message}"]

    def distill(self, hook: Any, *, passed: bool) -> None:
        """``--eval-distill-to``: build and launch from this run (see optimize/flow.py)."""
        from .client import redact
        from .optimize.flow import Finetuner

        assert self.settings.distill_to is not None
        try:
            self.distill_lines = Finetuner(self.settings, hook).after_run(
                self.run_dir,
                student=self.settings.distill_to,
                models=list(self.settings.models),
                passed=passed,
            )
        except Exception as exc:  # never crash the end of a session
            message = redact(f"{type(exc).__name__}: {exc}", self.client.secrets())
            self.distill_lines = [f"distillation failed: {message}"]

    def find_fine_tunes(self) -> None:
        """Which selected models were fine-tuned here, and on which cases (their manifests)."""
        root = self.settings.dir / "finetune"
        if not root.is_dir():
            return
        from .optimize.launch import trained_on

        for model in self.settings.models:
            found = trained_on(model, root)
            if found is None:
                continue
            launch_dir, manifest = found
            self.trained_cases[model] = set(manifest.trained_cases)
            where = os.path.relpath(launch_dir / "manifest.json", self.rootdir)
            self.holdout_notes[model] = (
                f"{model} trained on {len(manifest.trained_cases)} cases ({where}): "
                "it is scored only on the others"
            )

    @property
    def runs_dir(self) -> Path:
        return self.settings.dir / "runs"

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_id

    @property
    def client(self) -> ModelClient:
        if self._client is None:
            cache = None
            if self.settings.record != "off":
                cache = ResponseCache(self.settings.dir / "cache", self.settings.record)
            self._client = ModelClient(
                cache=cache,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout,
                max_retries=self.settings.max_retries,
                provider=self.settings.provider,
                prices=self.settings.prices,
                on_request=self.on_request,
                store=self.settings.store,
                transport=self.settings.transport,
            )
        return self._client

    def start(self) -> None:
        """Write run.json with the first case, so sessions without evals leave no run behind."""
        info = RunInfo(
            run_id=self.run_id,
            started_at=self.started_at,
            plugin_version=__version__,
            models=list(self.settings.models),
            base_url=self.settings.base_url,
            rootdir=str(self.rootdir),
            git_commit=_git_commit(self.rootdir),
            notes=list(self.holdout_notes.values()),
        )
        write_run_info(self.run_dir, info)
        (self.runs_dir / "latest").write_text(self.run_id + "\n", encoding="utf-8")

    def write(self, record: CaseRecord | dict[str, Any]) -> None:
        """Append a case (a CaseRecord, or its ``model_dump()``) to this writer's file."""
        if self._writer is None:
            if not (self.run_dir / "run.json").exists():
                self.start()
            self._writer = RunWriter(self.run_dir, self.writer_name)
        self._writer.append(record)

    def run_batch(self, jobs: list[Job], report: Callable[[str], None]) -> str | None:
        """Send the jobs' requests that are not cached yet through the Batch API.

        ``run`` waits and fills the cache (the tests then replay it); ``submit`` stops after
        submitting and returns the message to end the session with; ``collect`` fetches
        batches an earlier ``submit`` left. Raises BatchError with one clear line.
        """
        from .batch import (
            BatchError,
            BatchRequest,
            load_pending,
            save_pending,
            submit,
        )
        from .client import ENDPOINTS

        mode, client = self.settings.batch, self.client
        cache = client.cache
        if cache is None or not cache.writes_enabled:
            raise BatchError("--eval-batch fills the response cache: use --eval-record new")
        pending_dir = self.settings.dir / "batches"
        if mode == "collect":
            manifests = load_pending(pending_dir)
            if not manifests:
                report(f"no pending batches under {pending_dir}")
            for path, pending_ids, pending in manifests:
                self._collect(pending_ids, pending, report)
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
        ids = submit(client, requests, metadata={"run": self.run_id})
        report(f"submitted {len(requests)} requests as batch {', '.join(ids)}")
        if mode == "submit":
            path = save_pending(pending_dir, ids, requests)
            return (
                f"submitted {len(requests)} requests ({', '.join(ids)}; manifest {path}); "
                "collect them later with: pytest --eval-batch=collect"
            )
        self._collect(ids, requests, report)
        return None

    def _collect(self, ids: list[str], requests: list[Any], report: Callable[[str], None]) -> None:
        from .batch import collect, poll

        cache = self.client.cache
        assert cache is not None
        by_id = {r.custom_id: r for r in requests}
        for batch_id in ids:
            status = poll(
                self.client,
                batch_id,
                interval=self.settings.batch_poll_interval,
                on_progress=lambda s: report(
                    f"batch {s.id}: {s.status} ({s.completed + s.failed}/{s.total})"
                ),
            )
            written, failed = collect(self.client, status, by_id, cache)
            report(f"batch {batch_id}: {written} responses cached, {len(failed)} failed")
            for custom_id, message in list(failed.items())[:3]:
                report(f"  {custom_id[:12]}: {message}")

    def generation_progress(self) -> str | None:
        """One line on the ahead-of-time generation (summed over xdist workers)."""
        if self.generator is not None:
            return self.generator.progress.line()
        if not self.worker_progress:
            return None
        sent = sum(p.sent for p in self.worker_progress)
        replayed = sum(p.replayed for p in self.worker_progress)
        errors = sum(p.errors for p in self.worker_progress)
        cost = sum(p.cost for p in self.worker_progress)
        elapsed = max(p.elapsed for p in self.worker_progress)
        total = max(p.total for p in self.worker_progress)
        return (
            f"generated {total} declared completions on {len(self.worker_progress)} workers in "
            f"{elapsed:.1f}s ({sent} sent, {replayed} replayed, {errors} errors, ${cost:.4f})"
        )

    def close(self) -> None:
        if self.generator is not None:
            self.generator.stop()
        if self.sender is not None and (self.generator is None or self.generator.sender is None):
            self.sender.kill()  # warmed up, then not used
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._client is not None:
            self._client.close()

    def finish(self) -> RunSummary | None:
        """Summarise every writer's cases from disk (the same code serially and under xdist)."""
        self.close()
        try:
            info = read_run_info(self.run_dir)
        except OSError:
            return None
        cases = list(read_cases(self.run_dir, slim=True))
        from .summary import summarize

        summary = summarize(info, cases)
        write_json_atomic(self.run_dir / "summary.json", summary)
        self.summary = summary
        self.report = self.judge(summary, cases)
        write_json_atomic(self.run_dir / "report.json", self.report)
        self._write_reports(self.report)
        if self.settings.save:
            self.save(self.settings.save)
        return summary

    def judge(self, summary: RunSummary, cases: list[CaseRecord]) -> EvalReport:
        """Comparison with the baseline (a saved run, or a model of this run) and the gates."""
        from .compare import compare_models, compare_runs
        from .gates import check_comparison, check_run, parse_gate, parse_gates
        from .reports.document import EvalReport

        settings = self.settings
        gates = parse_gates([*settings.gates.fail_on, *settings.fail_on])
        for row in summary.evals:  # an eval's own gates, from its marker
            gates += [
                parse_gate(g).model_copy(update={"eval": row.eval, "exact": True})
                for g in row.fail_on
            ]
        gates = list(dict.fromkeys(gates))
        results = check_run(gates, summary.evals)
        comparison: Comparison | None = None
        tolerance, alpha = settings.gates.tolerance, settings.gates.alpha
        if self.baseline_dir is not None:
            baseline = (
                read_run_info(self.baseline_dir),
                list(read_cases(self.baseline_dir, slim=True)),
            )
            comparison = compare_runs(
                baseline, (summary.run, cases), tolerance=tolerance, alpha=alpha
            )
        elif settings.baseline_model:
            comparison = compare_models(
                summary.run, cases, settings.baseline_model, tolerance=tolerance, alpha=alpha
            )
        if comparison is not None:
            if not any(g.metric == "regression" for g in gates):
                gates.append(parse_gate(f"regression<={settings.gates.tolerance}"))
            results += check_comparison(gates, comparison)
        failed = any(not g.passed for g in results) or any(
            row.verdict == "fail" for row in summary.evals
        )
        return EvalReport(
            verdict="fail" if failed else "pass",
            summary=summary,
            comparison=comparison,
            gates=results,
        )

    def _write_reports(self, report: EvalReport) -> None:
        settings = self.settings
        if settings.json_report is not None:
            write_json_atomic(self._out(settings.json_report), report)
        if settings.md is not None:
            from .reports import markdown

            self._out(settings.md).write_text(markdown.render_report(report), encoding="utf-8")
        if settings.html is not None and report.comparison is not None:
            from .reports import html

            self._out(settings.html).write_text(
                html.render(report.comparison, report.gates), encoding="utf-8"
            )

    def _out(self, path: Path) -> Path:
        target = path if path.is_absolute() else self.rootdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def save(self, name: str) -> Path:
        """Keep this run under saved/NAME (replacing an older one) for later comparisons."""
        target = self.settings.dir / "saved" / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.run_dir, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


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
