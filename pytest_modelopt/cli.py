"""The ``modelopt`` command: runs, the response cache and the local model, without pytest."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, load_settings
from .records import (
    CaseRecord,
    RunNotFound,
    merge_runs,
    read_cases,
    read_run_info,
    resolve_run,
    sort_cases,
    write_json_atomic,
)
from .reports.terminal import table_lines
from .summary import summarize

if TYPE_CHECKING:
    from collections.abc import Sequence


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
    from .compare import compare_models, compare_runs
    from .gates import GateError, check_comparison, check_run, parse_gate, parse_gates
    from .reports.document import EvalReport
    from .reports.terminal import comparison_lines, gate_lines

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
    from .reports import markdown

    if args.json:
        write_json_atomic(Path(args.json), report)
    if args.md:
        Path(args.md).write_text(markdown.render_report(report), encoding="utf-8")
    if args.html:
        from .reports import html

        if report.comparison is None:
            print("modelopt: --html needs a comparison (a baseline)", file=sys.stderr)
        else:
            Path(args.html).write_text(
                html.render(report.comparison, report.gates), encoding="utf-8"
            )


def cmd_report(args: argparse.Namespace) -> int:
    from .gates import check_run, parse_gates
    from .reports.document import EvalReport

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
                from .records import RunSummary

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


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import ResponseCache

    settings = load_settings(Path.cwd())
    cache = ResponseCache(settings.dir / "cache")
    if args.action == "stats":
        stats = cache.stats()
        print(f"{cache.root}: {stats.entries} entries, {stats.bytes / 1024:.1f} KiB")
        for model, count in stats.by_model.items():
            print(f"  {model}: {count}")
        if stats.oldest is not None and stats.newest is not None:
            oldest = datetime.fromtimestamp(stats.oldest, timezone.utc).isoformat(
                timespec="seconds"
            )
            newest = datetime.fromtimestamp(stats.newest, timezone.utc).isoformat(
                timespec="seconds"
            )
            print(f"  last used: {oldest} .. {newest}")
    elif args.action == "prune":
        removed = cache.prune(args.older_than * 86400)
        print(f"removed {removed} entries not used for {args.older_than:g} days from {cache.root}")
    else:
        print(f"removed {cache.clear()} entries from {cache.root}")
    return 0


def cmd_serve_local(args: argparse.Namespace) -> int:
    from .local_model import LocalModelError, LocalServer

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    server = LocalServer(host=args.host, port=args.port, log=args.log)
    try:
        server.start()
    except LocalModelError as exc:
        print(f"modelopt serve-local: {exc}", file=sys.stderr)
        return 1
    with server:
        if command:
            env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
            print(f"modelopt: {server.alias} at {server.base_url}", file=sys.stderr, flush=True)
            return subprocess.call(command, env=env)
        print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
        print(
            f"serving {server.alias} (SmolLM2-135M-Instruct) with llama.cpp; "
            f"in another shell: export OPENAI_BASE_URL={server.base_url}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelopt", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    show = sub.add_parser("show", help="print a run's summary and its cases")
    show.add_argument("run", nargs="?", default="latest", help="run directory, run id or 'latest'")
    show.add_argument("--eval", help="only this eval (as named in the summary)")
    show.add_argument("--failed", action="store_true", help="show failed and errored cases")
    show.add_argument(
        "--status",
        action="append",
        choices=["passed", "failed", "error", "pending", "skipped"],
        help="show cases with this status (repeatable)",
    )
    show.add_argument("--limit", type=int, default=50, help="at most this many cases")
    show.add_argument("--width", type=int, default=160, help="truncate outputs to this width")
    show.set_defaults(fn=cmd_show)

    compare = sub.add_parser("compare", help="compare a candidate run with a baseline run")
    compare.add_argument("baseline", help="run directory, run id, saved name or 'latest'")
    compare.add_argument("candidate", help="run directory, run id, saved name or 'latest'")
    compare.add_argument("--baseline-model", help="compare models within the candidate run")
    compare.add_argument("--fail-on", action="append", metavar="EXPR", help="a gate (repeatable)")
    compare.add_argument("--tolerance", type=float, help="largest drop that is not a regression")
    compare.add_argument("--alpha", type=float, help="significance level (Holm-adjusted)")
    for command in (compare,):
        command.add_argument("--md", help="write the Markdown report here")
        command.add_argument("--html", help="write the HTML report here")
        command.add_argument("--json", help="write the JSON report here")
    compare.set_defaults(fn=cmd_compare)

    report = sub.add_parser("report", help="render one run (its summary and gates)")
    report.add_argument("run", nargs="?", default="latest")
    report.add_argument("--md", help="write the Markdown report here")
    report.add_argument("--html", help="write the HTML report here (needs a baseline)")
    report.add_argument("--json", help="write the JSON report here")
    report.set_defaults(fn=cmd_report)

    runs = sub.add_parser("runs", help="list the runs and saved runs")
    runs.set_defaults(fn=cmd_runs)

    merge = sub.add_parser("merge", help="merge runs (CI shards, xdist leftovers) into one run")
    merge.add_argument("runs", nargs="+", help="run directories, run ids or 'latest'")
    merge.add_argument("-o", "--output", required=True, help="directory of the merged run")
    merge.set_defaults(fn=cmd_merge)

    cache = sub.add_parser("cache", help="look after the response cache (.modelopt/cache)")
    cache.add_argument("action", choices=["stats", "prune", "clear"])
    cache.add_argument(
        "--older-than",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="prune: remove entries not written or replayed for this many days (default 30)",
    )
    cache.set_defaults(fn=cmd_cache)

    serve = sub.add_parser(
        "serve-local",
        help="serve SmolLM2-135M-Instruct locally over the OpenAI API (needs the [local] extra)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--log", type=Path, help="write the server's output to this file")
    serve.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="optional: run this command with OPENAI_BASE_URL set, then stop the server",
    )
    serve.set_defaults(fn=cmd_serve_local)

    from .optimize.cli import add_commands

    add_commands(sub)

    from .github import add_commands as add_github_commands

    add_github_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, RunNotFound) as exc:
        print(f"modelopt: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
