"""What a pytest run does for the optimize stage: before, scoring a fine-tuned model only on
the cases it never trained on; after, tagging stored completions with their verdicts
(``store = true``) and distilling into a student (``--eval-distill-to``).

None of it decides a verdict: a failure here is reported as a line in the summary, never a
crash of the session's end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..records.store import read_cases
from ..secrets import redact

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Settings
    from ..model.client import ModelClient


@dataclass
class FineTunes:
    """Selected models fine-tuned here: the cases each trained on, and a note for readers."""

    trained_cases: dict[str, set[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def find_fine_tunes(settings: Settings, rootdir: Path) -> FineTunes:
    """Which selected models were fine-tuned here, and on which cases (their manifests)."""
    found = FineTunes()
    root = settings.dir / "finetune"
    if not root.is_dir():
        return found
    from .launch import trained_on  # the launch code, only where fine-tunes exist

    for model in settings.models:
        match = trained_on(model, root)
        if match is None:
            continue
        launch_dir, manifest = match
        found.trained_cases[model] = set(manifest.trained_cases)
        where = os.path.relpath(launch_dir / "manifest.json", rootdir)
        found.notes[model] = (
            f"{model} trained on {len(manifest.trained_cases)} cases ({where}): "
            "it is scored only on the others"
        )
    return found


def tag_stored_verdicts(client: ModelClient, run_dir: Path) -> list[str]:
    """``store = true``: each stored completion learns its case's verdict, for ``modelopt
    distill --source stored`` (metadata is all a stored completion can change).

    Returns warnings for the summary.
    """
    from .stored import tag_verdicts  # the stored-completions API, only with store = true

    tags = [
        (
            case.completion_id,
            {**(case.completion_metadata or {}), "modelopt_verdict": case.status},
        )
        for case in read_cases(run_dir)
        if case.completion_id
        and "modelopt_eval" in (case.completion_metadata or {})
        and case.status in ("passed", "failed", "error")
    ]
    if not tags:
        return []
    try:
        return tag_verdicts(client.sdk(), tags)
    except Exception as exc:  # a warning at the end of the session, not a crash
        return [f"could not tag stored completions: {redact(str(exc), client.secrets())}"]


def distill(
    settings: Settings, hook: Any, run_dir: Path, *, passed: bool, secrets: tuple[str, ...]
) -> list[str]:
    """``--eval-distill-to``: build and launch from this run (see optimize/flow.py).

    Returns the lines the summary shows.
    """
    from .flow import Finetuner  # the optimize stage, only when asked for

    assert settings.distill_to is not None
    try:
        return Finetuner(settings, hook).after_run(
            run_dir,
            student=settings.distill_to,
            models=list(settings.models),
            passed=passed,
        )
    except Exception as exc:  # never crash the end of a session
        return [f"distillation failed: {redact(f'{type(exc).__name__}: {exc}', secrets)}"]
