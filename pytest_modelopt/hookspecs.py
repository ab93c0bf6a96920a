"""Hooks other plugins and conftest.py files can implement (``pytest_modelopt_*``).

Registered through ``pytest_addhooks``; implement them like any pytest hook, e.g. in a
``conftest.py``::

    def pytest_modelopt_request(request, context):
        request.setdefault("metadata", {})["team"] = "support"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Settings
    from .model.types import CallContext
    from .optimize.jobs import Backend, JobInfo, Manifest
    from .records.models import CaseRecord, RunSummary

# Marked, so that a plain pluggy manager (the `modelopt` command's) sees them too.
hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_modelopt_request(request: dict[str, Any], context: CallContext) -> None:
    """Adjust a request body in place just before it is sent (and before it is cached).

    ``request`` is the full JSON body (``model``, ``messages`` or ``input``, parameters);
    ``context`` says which endpoint, model, sample, eval and case the call belongs to.
    Called for every model call: the declared prompt's, ``llm.chat()`` in a test body and
    judges alike.
    """


@hookspec
def pytest_modelopt_case_result(record: CaseRecord) -> None:
    """See each case result as it is written to the run (in the process that ran it)."""


@hookspec
def pytest_modelopt_summary_columns() -> list[tuple[str, Any]]:  # type: ignore[empty-body]
    """Extra columns for the summary table: ``[(header, fn(EvalSummary) -> str), ...]``.

    Every implementation's list is used, in hook order.
    """


@hookspec
def pytest_modelopt_summary_sections(summary: RunSummary) -> list[tuple[str, str]]:  # type: ignore[empty-body]
    """Extra sections printed after the summary table: ``[(title, text), ...]``."""


# -- optimize: distillation and fine-tuning ---------------------------------------------
# Also called by the `modelopt` command, which loads plugins from the `modelopt` entry-point
# group (a conftest.py is seen only inside a pytest session).


@hookspec
def pytest_modelopt_training_example(
    example: dict[str, Any], record: CaseRecord, method: str
) -> bool | None:
    """Filter, transform or redact one training example before it is written.

    ``example`` is in OpenAI's format for ``method`` (sft, dpo, rft): change it in place
    (e.g. strip a customer's e-mail address); return False to leave it out. ``record`` is
    the case it came from.
    """


@hookspec(firstresult=True)
def pytest_modelopt_finetune_backend(name: str, settings: Settings) -> Backend | None:
    """The fine-tuning backend called ``name``: return one to add a provider (Together,
    Fireworks, Azure...). The first non-None answer wins; the shipped ones come last."""


@hookspec
def pytest_modelopt_finetune_launch(manifest: Manifest, launch_dir: Path) -> bool | None:
    """Just before a launch, after validation: return False to veto it, or adjust
    ``manifest.hyperparameters`` in place."""


@hookspec
def pytest_modelopt_finetune_job(job: JobInfo) -> None:
    """Called with every job launched (or found again for the same data)."""
