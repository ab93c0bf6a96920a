"""One distillation or fine-tuning flow, with the settings and the hooks of whoever runs it.

``modelopt distill`` and ``modelopt finetune`` (hooks from the ``modelopt`` entry-point
group), ``--eval-distill-to`` and the ``finetune`` fixture (pytest's hooks, conftest.py
included) all go through ``Finetuner``, so they build, check, confirm and launch alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from .. import hookspecs
from ..config import find_project
from ..records.labels import find_label_files, read_label_files
from ..records.store import read_cases, read_run_info
from .backends import BUILTIN, builtin_backend
from .follow import follow
from .jobs import BackendError, JobEvent, JobInfo
from .launch import LaunchRefused, Prepared, confirm_launch, launch, prepare
from .training_data import Selection, TrainingDataError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..config import Settings
    from ..records.labels import Label
    from ..records.models import CaseRecord
    from .jobs import Backend, Manifest, Method


def plugin_hooks() -> Any:
    """The hook relay for runs outside pytest: our hookspecs, plugins from entry points."""

    class Manager(pluggy.PluginManager):
        def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
            # like pytest's: a plugin's pytest_modelopt_* functions need no @hookimpl
            opts = super().parse_hookimpl_opts(plugin, name)
            if opts is None and name.startswith("pytest_modelopt_"):
                return {}
            return opts

    manager = Manager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints("modelopt")
    return manager.hook


def preflight(backend: Backend, manifest: Manifest) -> list[str]:
    """What the backend states before a launch (as ``note:`` lines), or BackendError when it
    refuses this one: OpenAI's end dates, through the optional ``refusal`` and ``notices``
    methods of a backend (jobs.py's Backend protocol)."""
    refusal = getattr(backend, "refusal", None)  # optional: a plugin's backend may lack it
    reason = refusal(manifest) if refusal is not None else None
    if reason:
        raise BackendError(str(reason))
    notices = getattr(backend, "notices", None)  # optional, as refusal
    return [f"  note: {line}" for line in (notices(manifest) if notices is not None else [])]


class Finetuner:
    """Builds training sets from runs and launches them (the ``finetune`` fixture)."""

    def __init__(
        self,
        settings: Settings,
        hook: Any = None,
        say: Callable[[str], None] = print,
        ask: Callable[[str], str] | None = None,
        current_run: Path | None = None,
    ) -> None:
        self.settings = settings
        self.hook = hook
        self.say = say
        self.ask = ask
        #: the run of the pytest session that made this Finetuner (the fixture's), if any
        self.current_run = current_run

    @property
    def root(self) -> Path:
        """Where launch directories go: ``.modelopt/finetune/``."""
        return self.settings.dir / "finetune"

    def backend(self, name: str | None = None) -> Backend:
        name = name or self.settings.finetune_backend or self.settings.finetune.backend
        found = None
        if self.hook is not None:
            found = self.hook.pytest_modelopt_finetune_backend(name=name, settings=self.settings)
        found = found or builtin_backend(name, self.settings)
        if found is None:
            raise BackendError(
                f"no fine-tuning backend {name!r}: the shipped ones are {', '.join(BUILTIN)}; "
                "others come from a plugin implementing pytest_modelopt_finetune_backend"
            )
        return found

    def labels(self) -> list[Label]:
        """The human labels the settings name (``labels``): globs from the config file
        relative to the project's root, from the command line or the environment to the
        current directory, as the verdict reads them."""
        if not self.settings.labels:
            return []
        root = find_project(Path.cwd()) if self.settings.from_file("labels") else Path.cwd()
        return read_label_files(find_label_files(self.settings.labels, root))

    def _example_hook(self) -> Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None]:
        hook = self.hook

        def apply(
            example: dict[str, Any], record: CaseRecord, method: str
        ) -> dict[str, Any] | None:
            if hook is None:
                return example
            answers = hook.pytest_modelopt_training_example(
                example=example, record=record, method=method
            )
            return None if any(answer is False for answer in answers) else example

        return apply

    def prepare(
        self,
        records: Iterable[CaseRecord],
        *,
        base_model: str,
        method: Method | None = None,
        teacher: str | None = None,
        source_run: str | None = None,
        out: Path | None = None,
        evals: Iterable[str] | None = None,
        min_score: float | None = None,
        answers_from: str | None = None,
    ) -> Prepared:
        ft = self.settings.finetune
        method = method or self.settings.finetune_method or ft.method
        answers_from = answers_from or ft.answers_from
        if answers_from is not None and method != "sft":
            raise TrainingDataError(
                f"answers_from ({answers_from!r}) gives SFT its answers; {method} sets are "
                "built from the model's graded answers or its graders: use --method sft"
            )
        selection = Selection(
            teacher=teacher,
            evals=tuple(evals if evals is not None else ft.evals),
            min_score=min_score if min_score is not None else ft.min_score,
            holdout_fraction=ft.holdout,
            salt=ft.salt,
            validation_fraction=ft.validation,
            labels=self.labels(),
            pin_labelled=ft.pin_labelled,
            answers_from=answers_from,
        )
        return prepare(
            records,
            method=method,
            base_model=base_model,
            selection=selection,
            root=self.root,
            source_run=source_run,
            out=out,
            hyperparameters=dict(ft.hyperparameters),
            training_prices=dict(ft.training_prices),
            hook=self._example_hook(),
        )

    def prepare_run(self, run_dir: Path | None = None, **kwargs: Any) -> Prepared:
        """``prepare`` over one saved run's cases (by default the current session's run)."""
        run_dir = run_dir or self.current_run
        if run_dir is None:
            raise TrainingDataError("prepare_run needs a run directory outside a pytest session")
        info = read_run_info(run_dir)
        return self.prepare(list(read_cases(run_dir)), source_run=info.run_id, **kwargs)

    def launch(
        self,
        prepared: Prepared,
        *,
        backend: str | None = None,
        yes: bool | None = None,
        follow: bool = False,
        timeout: float = 24 * 3600,
    ) -> JobInfo:
        """Confirm (paid backends), let the hooks veto, launch; optionally follow to the end."""
        name = backend or self.settings.finetune_backend or self.settings.finetune.backend
        chosen = self.backend(name)
        notices = preflight(chosen, prepared.manifest)
        asked = confirm_launch(
            prepared,
            name,
            yes=self.settings.yes if yes is None else yes,
            auto_launch=self.settings.finetune.auto_launch,
            ask=self.ask,
            notices=notices,
        )
        if not asked:  # a question shows them: said once either way
            for line in notices:
                self.say(line)
        job = launch(prepared, chosen, veto=self._veto)
        self.say(f"{name} job {job.id}: {job.status}")
        if self.hook is not None:
            self.hook.pytest_modelopt_finetune_job(job=job)
        if follow and not job.done:
            job = self.follow(job, chosen, timeout=timeout)
            error = f" ({job.error})" if job.error else ""
            self.say(f"{name} job {job.id}: {job.status}{error}")
        return job

    def follow(
        self, job: JobInfo, backend: Backend | None = None, timeout: float = 24 * 3600
    ) -> JobInfo:
        chosen = backend or self.backend(job.backend)

        def show(event: JobEvent) -> None:
            self.say(f"  {job.id} [{event.level}] {event.message}")

        return follow(chosen, job, show, self.settings.finetune.poll_interval, timeout)

    def _veto(self, manifest: Manifest, launch_dir: Path) -> bool:
        if self.hook is None:
            return True
        answers = self.hook.pytest_modelopt_finetune_launch(
            manifest=manifest, launch_dir=launch_dir
        )
        return not any(answer is False for answer in answers)

    def next_steps(self, job: JobInfo, prepared: Prepared) -> list[str]:
        """What to run once the job is done: the same evals on the student, then compare."""
        # a local checkpoint is served under its job id (see its serve hint)
        model = job.id if job.checkpoint_dir else job.fine_tuned_model
        exported = "MODEL_NAME" if job.status == "exported" else None  # as its serve hint says
        model = model or exported or "<the fine-tuned model, once the job succeeds>"
        run = prepared.manifest.source_run or "RUN"
        lines = [f"follow it: modelopt jobs follow {prepared.launch_dir}"] if not job.done else []
        if job.serve_hint:
            lines.append(f"serve it: {job.serve_hint}")
        lines += [
            f"measure it on the held-out cases: pytest --eval-models '{model}' --eval-save student",
            f"compare with the teacher: modelopt compare {run} student",
        ]
        return lines

    def after_run(
        self, run_dir: Path, *, student: str, models: list[str], passed: bool
    ) -> list[str]:
        """``--eval-distill-to``: launch only if the run's gates passed; lines to print."""
        if not passed:
            return [
                f"not distilling into {student}: the run's gates failed, so its answers are not "
                "good enough to learn from yet"
            ]
        teacher = next((m for m in models if m != student), None)
        backend = self.settings.finetune_backend or self.settings.finetune.backend
        try:
            prepared = self.prepare_run(run_dir, base_model=student, teacher=teacher)
        except TrainingDataError as exc:
            return [f"not distilling into {student}: {exc}"]
        lines = prepared.lines(backend)
        said: list[str] = []
        self.say, say = said.append, self.say
        try:
            job = self.launch(prepared, backend=backend)
        except (LaunchRefused, BackendError) as exc:
            return [*lines, f"not launched: {exc}"]
        finally:
            self.say = say
        return [*lines, *said, *(f"next: {line}" for line in self.next_steps(job, prepared))]
