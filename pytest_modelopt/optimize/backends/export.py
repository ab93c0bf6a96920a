"""The ``export`` backend: the validated files and their manifest, and no job.

For providers without a backend here (or a human in the loop): the launch directory is the
deliverable. ``train.jsonl`` is in OpenAI's format; ``export/`` holds the same set for
Together AI, TRL and axolotl (``formats.py``), each line checked against its format. The
manifest still says which cases the data holds, so a model trained from it elsewhere is
scored on the holdout like any other.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..jobs import BackendError, JobEvent, JobInfo, Manifest, write_job

if TYPE_CHECKING:
    from pathlib import Path


class ExportBackend:
    name = "export"

    @staticmethod
    def job_for(manifest: Manifest, launch_dir: Path) -> JobInfo:
        """The (job-less) record of an exported set."""
        return JobInfo(
            backend="export",
            id=f"export-{manifest.dataset_sha256[:12]}",
            status="exported",
            base_model=manifest.base_model,
            method=manifest.method,
            dataset_sha256=manifest.dataset_sha256,
            created_at=time.time(),
            finished_at=time.time(),
            launch_dir=str(launch_dir.resolve()),
        )

    def launch(self, manifest: Manifest, launch_dir: Path) -> JobInfo:
        from .formats import (  # jsonschema and yaml: only when a set is exported
            EXPORT_DIR,
            export_formats,
            left_out_text,
            readme,
        )

        written = export_formats(manifest, launch_dir)
        where = f"upload {launch_dir / manifest.train_file} (OpenAI's format) to your provider"
        if written:
            (launch_dir / EXPORT_DIR / "README.md").write_text(
                readme(manifest, launch_dir, written), encoding="utf-8"
            )
            formats = ", ".join(
                f"{w.fmt}/" + (f" ({left_out_text(w)})" if w.left_out else "") for w in written
            )
            where += f", or use {launch_dir / EXPORT_DIR}: {formats} (see its README.md)"
        job = self.job_for(manifest, launch_dir).model_copy(
            update={
                "serve_hint": (
                    f"{where}; once trained, register the model: modelopt jobs register "
                    f"{launch_dir} MODEL_NAME, then pytest --eval-models MODEL_NAME"
                )
            }
        )
        write_job(launch_dir, job)
        return job

    def refresh(self, job: JobInfo) -> JobInfo:
        return job

    def events(self, job: JobInfo, after: str | None = None) -> list[JobEvent]:
        return []

    def cancel(self, job: JobInfo) -> JobInfo:
        raise BackendError("an exported training set has no job to cancel")
