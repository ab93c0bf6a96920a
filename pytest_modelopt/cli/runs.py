"""``modelopt show|runs|merge|report|compare``: saved runs, read without pytest.

``compare`` and ``report`` decide their verdict with the one policy
(:func:`pytest_modelopt.verdict.judge.judge`) and write reports with the same code as the
pytest session (:mod:`pytest_modelopt.reports.write`).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import find_project
from ..records.labels import LabelsError
from ..records.models import RunSummary
from ..records.store import (
    RunNotFound,
    RunUnreadable,
    merge_runs,
    read_cases,
    read_model,
    read_run_info,
    resolve_run,
    sort_cases,
    write_json_atomic,
)
from ..reports.terminal import (
    calibration_lines,
    comparison_lines,
    failure_lines,
    gate_lines,
    inconclusive_lines,
    table_lines,
)
from ..reports.write import write_reports
from ..run import labels_for, settings_for
from ..untrusted import for_terminal, one_line
from ..verdict.document import EvalReport
from ..verdict.gates import GateError
from ..verdict.judge import Policy, compare_with, judge
from ..verdict.summary import summarize

if TYPE_CHECKING:
    import argparse

    from ..records.models import CaseRecord
    from ..records.trajectory import Trajectory


def _runs_dir() -> Path:
    return settings_for(find_project(Path.cwd())).dir / "runs"


def _width() -> int:
    """The terminal's width (COLUMNS when set; 80 when not a terminal), as pytest takes it."""
    return shutil.get_terminal_size().columns


def _excerpt(text: str | None, limit: int) -> str:
    return "-" if text is None else one_line(text, limit)


def _say(text: str = "", *, err: bool = False) -> None:
    """Print a line made safe: runs hold untrusted text (model output, server messages)."""
    print(for_terminal(text), file=sys.stderr if err else sys.stdout)


def cmd_show(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, _runs_dir())
    info = read_run_info(run_dir)
    cases = list(read_cases(run_dir))
    summary = summarize(info, cases)
    _say(f"run {info.run_id} ({run_dir}), started {info.started_at}")
    rows = [r for r in summary.evals if args.eval is None or r.eval == args.eval]
    for line in table_lines(rows, width=_width()):
        _say(line)
    wanted = set(args.status or []) | ({"failed", "error"} if args.failed else set())
    shown = [
        c
        for c in sort_cases(cases)
        if (args.eval is None or c.eval == args.eval) and (not wanted or c.status in wanted)
    ]
    if wanted or args.eval:
        _say()
        for case in shown[: args.limit]:
            _print_case(case, args.width)
        if len(shown) > args.limit:
            _say(f"... {len(shown) - args.limit} more (use --limit)")
    return 0


def _print_case(case: CaseRecord, width: int) -> None:
    sample = f" sample {case.sample}" if case.sample else ""
    _say(f"{case.status.upper():7} {case.eval} [{case.model}] case {case.case_id}{sample}")
    if case.error is not None:
        _say(f"        error: {case.error.kind}: {case.error.message}")
    for grade in case.grades:
        mark = "ok  " if grade.passed else "FAIL"
        _say(f"        {mark} {grade.name}: {grade.score:g} {_excerpt(grade.reason, width)}")
    _say(f"        output: {_excerpt(case.output, width)}")
    if case.trajectory is not None:
        _say(f"        trajectory: {_excerpt(_steps(case.trajectory), width)}")


def _steps(run: Trajectory) -> str:
    """An agent's run on one line: its model calls, then each tool call (and a raise)."""
    raised = {i.call_id: i.error for i in run.items if i.kind == "tool_output" and i.error}
    steps = [f"{run.turns} model calls"]
    for item in run.items:
        if item.kind == "tool_call":
            arguments = item.arguments
            shown = arguments if isinstance(arguments, str) else json.dumps(arguments)
            error = raised.get(item.call_id)
            steps.append(f"{item.name}({shown})" + (f" raised {error}" if error else ""))
        elif item.kind == "handoff":
            steps.append(f"handoff to {item.name}")
    return "; ".join(steps)


def cmd_compare(args: argparse.Namespace) -> int:
    """A candidate run against a baseline run (or its models against one of them), judged
    by the same policy as the pytest session that would have compared them."""

    settings = settings_for(find_project(Path.cwd()))
    runs_dir = settings.dir / "runs"
    base_dir = resolve_run(args.baseline, runs_dir)
    cand_dir = resolve_run(args.candidate, runs_dir)
    base = (read_run_info(base_dir), list(read_cases(base_dir)))
    cand_info, cand_cases = read_run_info(cand_dir), list(read_cases(cand_dir))
    policy = Policy.from_settings(
        settings, fail_on=args.fail_on or (), tolerance=args.tolerance, alpha=args.alpha
    )
    summary = summarize(cand_info, cand_cases)
    comparison = compare_with(
        summary,
        cand_cases,
        policy,
        baseline=None if args.baseline_model else base,
        baseline_model=args.baseline_model,
    )
    assert comparison is not None
    try:
        labels = labels_for(settings, find_project(Path.cwd()), Path.cwd())
        report = judge(summary, comparison, policy, cases=cand_cases, labels=labels)
    except (GateError, LabelsError) as exc:
        _say(f"modelopt compare: {exc}", err=True)
        return 2
    _say(f"{base[0].run_id} -> {cand_info.run_id}")
    for line in comparison_lines(comparison, _width()) + gate_lines(report.gates):
        _say(line)
    for line in calibration_lines(report.calibration) + inconclusive_lines(report):
        _say(line)
    for line in failure_lines(report.summary, f"modelopt show {cand_dir}"):
        _say(line)
    return _write_outputs(
        args, report, cand_dir, cand_dir if args.baseline_model else base_dir
    ) or (1 if report.verdict == "fail" else 0)


def _write_outputs(
    args: argparse.Namespace,
    report: EvalReport,
    run_dir: Path,
    baseline_dir: Path | None = None,
) -> int:
    """Write the reports asked for; 3 when one could not be written (the run's verdict is
    then unknown to whoever reads that file), else 0. ``run_dir`` / ``baseline_dir``: where
    the HTML page's run viewer reads the cases."""
    written = write_reports(
        report,
        json_path=Path(args.json) if args.json else None,
        md_path=Path(args.md) if args.md else None,
        html_path=Path(args.html) if args.html else None,
        run_dir=run_dir,
        baseline_dir=baseline_dir,
    )
    for note in written.notes:
        _say(f"modelopt: {note}", err=True)
    for problem in written.problems:
        _say(f"modelopt: {problem}", err=True)
    return 3 if written.problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    """One run's verdict: the one its session decided (report.json), else decided now by
    the same policy from its cases and the current settings' gates."""

    settings = settings_for(find_project(Path.cwd()))
    run_dir = resolve_run(args.run, settings.dir / "runs")
    saved = run_dir / "report.json"
    if saved.is_file():
        try:
            report = read_model(saved, EvalReport)
        except RunUnreadable as exc:
            _say(f"modelopt report: {exc}; the run's verdict is unknown", err=True)
            return 2
    else:
        cases = list(read_cases(run_dir))
        summary = summarize(read_run_info(run_dir), cases)
        try:
            labels = labels_for(settings, find_project(Path.cwd()), Path.cwd())
        except LabelsError as exc:
            _say(f"modelopt report: {exc}", err=True)
            return 2
        report = judge(summary, None, Policy.from_settings(settings), cases=cases, labels=labels)
    _say(f"run {report.summary.run.run_id}: {report.verdict}")
    for line in table_lines(report.summary.evals, width=_width()):
        _say(line)
    for line in (
        gate_lines(report.gates)
        + calibration_lines(report.calibration)
        + inconclusive_lines(report)
    ):
        _say(line)
    return _write_outputs(
        args, report, run_dir, _baseline_dir(report, run_dir, settings.dir / "runs")
    ) or (1 if report.verdict == "fail" else 0)


def _baseline_dir(report: EvalReport, run_dir: Path, runs_dir: Path) -> Path | None:
    """Where the cases of a saved report's baseline are, for the viewer's before/after: the
    run itself when its baseline was one of its models, the baseline run when it is still
    on disk; None (the viewer then shows no diff) when it is gone."""
    comparison = report.comparison
    if comparison is None:
        return None
    if comparison.baseline_run.startswith(f"{comparison.candidate_run} ("):
        return run_dir  # compare_models names its baseline "RUN (MODEL)"
    try:
        return resolve_run(comparison.baseline_run, runs_dir)
    except RunNotFound:
        return None


def cmd_runs(args: argparse.Namespace) -> int:
    settings = settings_for(find_project(Path.cwd()))
    rows = []
    for base, label in ((settings.dir / "runs", ""), (settings.dir / "saved", "saved: ")):
        for run_json in sorted(base.glob("*/run.json")) if base.is_dir() else []:
            info = read_run_info(run_json.parent)
            summary = run_json.parent / "summary.json"
            evals = "?"
            if summary.is_file():
                try:
                    evals = str(len(read_model(summary, RunSummary).evals))
                except RunUnreadable:
                    evals = "unreadable"
            rows.append(
                f"{label}{run_json.parent.name}  {info.started_at}  "
                f"models={','.join(info.models)}  evals={evals}"
            )
    _say("\n".join(rows) if rows else f"no runs under {settings.dir}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    runs_dir = _runs_dir()
    run_dirs = [resolve_run(ref, runs_dir) for ref in args.runs]
    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        _say(
            f"modelopt merge: {out} exists and is not empty; choose a new directory",
            err=True,
        )
        return 2
    for warning in merge_runs(run_dirs, out, out.name):
        _say(f"warning: {warning}", err=True)
    summary = summarize(read_run_info(out), read_cases(out))
    write_json_atomic(out / "summary.json", summary)
    _say(f"merged {len(run_dirs)} runs into {out}")
    for line in table_lines(summary.evals, width=_width()):
        _say(line)
    return 0
