"""``modelopt show|runs|merge|report|compare``: saved runs, read without pytest.

``compare`` and ``report`` decide their verdict with the one policy
(:func:`pytest_modelopt.verdict.judge.judge`) and write reports with the same code as the
pytest session (:mod:`pytest_modelopt.reports.write`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import load_settings
from ..records.store import (
    merge_runs,
    read_cases,
    read_run_info,
    resolve_run,
    sort_cases,
    write_json_atomic,
)
from ..reports.terminal import table_lines
from ..verdict.summary import summarize

if TYPE_CHECKING:
    import argparse

    from ..records.models import CaseRecord


def _runs_dir() -> Path:
    return load_settings(Path.cwd()).dir / "runs"


def _excerpt(text: str | None, limit: int) -> str:
    if text is None:
        return "-"
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cmd_show(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, _runs_dir())
    info = read_run_info(run_dir)
    cases = list(read_cases(run_dir))
    summary = summarize(info, cases)
    print(f"run {info.run_id} ({run_dir}), started {info.started_at}")
    rows = [r for r in summary.evals if args.eval is None or r.eval == args.eval]
    for line in table_lines(rows):
        print(line)
    wanted = set(args.status or []) | ({"failed", "error"} if args.failed else set())
    shown = [
        c
        for c in sort_cases(cases)
        if (args.eval is None or c.eval == args.eval) and (not wanted or c.status in wanted)
    ]
    if wanted or args.eval:
        print()
        for case in shown[: args.limit]:
            _print_case(case, args.width)
        if len(shown) > args.limit:
            print(f"... {len(shown) - args.limit} more (use --limit)")
    return 0


def _print_case(case: CaseRecord, width: int) -> None:
    sample = f" sample {case.sample}" if case.sample else ""
    print(f"{case.status.upper():7} {case.eval} [{case.model}] case {case.case_id}{sample}")
    if case.error is not None:
        print(f"        error: {case.error.kind}: {case.error.message}")
    for grade in case.grades:
        mark = "ok  " if grade.passed else "FAIL"
        print(f"        {mark} {grade.name}: {grade.score:g} {_excerpt(grade.reason, width)}")
    print(f"        output: {_excerpt(case.output, width)}")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..reports.terminal import comparison_lines, gate_lines
    from ..verdict.compare import compare_models, compare_runs
    from ..verdict.document import EvalReport
    from ..verdict.gates import GateError, check_comparison, check_run, parse_gate, parse_gates

    settings = load_settings(Path.cwd())
    runs_dir = settings.dir / "runs"
    base_dir = resolve_run(args.baseline, runs_dir)
    cand_dir = resolve_run(args.candidate, runs_dir)
    base = (read_run_info(base_dir), list(read_cases(base_dir)))
    cand = (read_run_info(cand_dir), list(read_cases(cand_dir)))
    tolerance = settings.gates.tolerance if args.tolerance is None else args.tolerance
    alpha = settings.gates.alpha if args.alpha is None else args.alpha
    if args.baseline_model:
        comparison = compare_models(*cand, args.baseline_model, tolerance=tolerance, alpha=alpha)
    else:
        comparison = compare_runs(base, cand, tolerance=tolerance, alpha=alpha)
    try:
        gates = parse_gates([*settings.gates.fail_on, *(args.fail_on or [])])
    except GateError as exc:
        print(f"modelopt compare: {exc}", file=sys.stderr)
        return 2
    if not any(g.metric == "regression" for g in gates):
        gates.append(parse_gate(f"regression<={tolerance}"))
    summary = summarize(*cand)
    results = check_run(gates, summary.evals) + check_comparison(gates, comparison)
    failed = any(not g.passed for g in results)
    report = EvalReport(
        verdict="fail" if failed else "pass", summary=summary, comparison=comparison, gates=results
    )
    print(f"{base[0].run_id} -> {cand[0].run_id}")
    for line in comparison_lines(comparison) + gate_lines(results):
        print(line)
    _write_outputs(args, report)
    return 1 if failed else 0


def _write_outputs(args: argparse.Namespace, report: Any) -> None:
    from ..reports import markdown

    if args.json:
        write_json_atomic(Path(args.json), report)
    if args.md:
        Path(args.md).write_text(markdown.render_report(report), encoding="utf-8")
    if args.html:
        from ..reports import html

        if report.comparison is None:
            print("modelopt: --html needs a comparison (a baseline)", file=sys.stderr)
        else:
            Path(args.html).write_text(
                html.render(report.comparison, report.gates), encoding="utf-8"
            )


def cmd_report(args: argparse.Namespace) -> int:
    from ..verdict.document import EvalReport
    from ..verdict.gates import check_run, parse_gates

    settings = load_settings(Path.cwd())
    run_dir = resolve_run(args.run, settings.dir / "runs")
    saved = run_dir / "report.json"
    if saved.is_file():
        report = EvalReport.model_validate_json(saved.read_bytes())
    else:
        summary = summarize(read_run_info(run_dir), read_cases(run_dir))
        gates = check_run(parse_gates(settings.gates.fail_on), summary.evals)
        failed = any(not g.passed for g in gates) or any(r.verdict == "fail" for r in summary.evals)
        report = EvalReport(verdict="fail" if failed else "pass", summary=summary, gates=gates)
    print(f"run {report.summary.run.run_id}: {report.verdict}")
    for line in table_lines(report.summary.evals):
        print(line)
    _write_outputs(args, report)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    settings = load_settings(Path.cwd())
    rows = []
    for base, label in ((settings.dir / "runs", ""), (settings.dir / "saved", "saved: ")):
        for run_json in sorted(base.glob("*/run.json")) if base.is_dir() else []:
            info = read_run_info(run_json.parent)
            summary = run_json.parent / "summary.json"
            evals = "?"
            if summary.is_file():
                from ..records.models import RunSummary

                evals = str(len(RunSummary.model_validate_json(summary.read_bytes()).evals))
            rows.append(
                f"{label}{run_json.parent.name}  {info.started_at}  "
                f"models={','.join(info.models)}  evals={evals}"
            )
    print("\n".join(rows) if rows else f"no runs under {settings.dir}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    runs_dir = _runs_dir()
    run_dirs = [resolve_run(ref, runs_dir) for ref in args.runs]
    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        print(
            f"modelopt merge: {out} exists and is not empty; choose a new directory",
            file=sys.stderr,
        )
        return 2
    for warning in merge_runs(run_dirs, out, out.name):
        print(f"warning: {warning}", file=sys.stderr)
    summary = summarize(read_run_info(out), read_cases(out))
    write_json_atomic(out / "summary.json", summary)
    print(f"merged {len(run_dirs)} runs into {out}")
    for line in table_lines(summary.evals):
        print(line)
    return 0
