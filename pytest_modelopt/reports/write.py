"""The report files a run writes (``--eval-json``, ``--eval-md``, ``--eval-html``), for the
pytest session and ``modelopt compare|report`` alike.

Each file is written on its own: one that cannot be written (a missing directory that
cannot be made, a full disk) does not stop the others, and is returned as a problem for
the caller to fail the run with. Nothing is left half-written: each file is written to a
temporary name and renamed into place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ..verdict.document import EvalReport


@dataclass(frozen=True)
class Written:
    """What ``write_reports`` did: the files written, notes, and the problems (which fail
    the run: a report that was asked for and not written is not a pass)."""

    files: list[Path]
    notes: list[str]
    problems: list[str]


def write_reports(
    report: EvalReport,
    *,
    json_path: Path | None = None,
    md_path: Path | None = None,
    html_path: Path | None = None,
    run_dir: Path | None = None,
    baseline_dir: Path | None = None,
) -> Written:
    """Write the reports asked for. The HTML page's run viewer reads every case of
    ``run_dir`` (whole records: the slim ones the verdict was decided from have no input),
    and, with a comparison, the baseline's cases from ``baseline_dir`` (the run directory
    itself when the baseline is one of its models)."""
    files: list[Path] = []
    notes: list[str] = []
    problems: list[str] = []
    jobs: list[tuple[str, Path, str]] = []
    if json_path is not None:
        jobs.append(("JSON", json_path, "json"))
    if md_path is not None:
        jobs.append(("Markdown", md_path, "md"))
    if html_path is not None:
        jobs.append(("HTML", html_path, "html"))
    for name, path, kind in jobs:
        try:
            text = _render(report, kind, run_dir, baseline_dir)
            _write_atomic(path, text)
        except OSError as exc:
            problems.append(
                f"could not write the {name} report to {path}: {exc.strerror or exc} "
                "(check that its folder can be created and written)"
            )
        except Exception as exc:
            problems.append(f"could not render the {name} report: {type(exc).__name__}: {exc}")
        else:
            files.append(path)
    return Written(files, notes, problems)


def _render(report: EvalReport, kind: str, run_dir: Path | None, baseline_dir: Path | None) -> str:
    if kind == "json":
        return report.model_dump_json(indent=2) + "\n"
    if kind == "md":
        from . import markdown  # each renderer loads when its report is asked for

        return markdown.render_report(report)
    from . import html, viewer  # each renderer loads when its report is asked for

    document = None
    if run_dir is not None:
        from ..records.store import read_cases  # loads with the HTML report only

        baseline = list(read_cases(baseline_dir)) if baseline_dir is not None else None
        document = viewer.document(report, read_cases(run_dir), baseline)
    return html.render(
        report.comparison,
        report.gates,
        summary=report.summary,
        viewer=document,
        calibration=report.calibration,
    )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
