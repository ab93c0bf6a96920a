"""The ``modelopt`` command: look at runs and serve the local model, without pytest."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError, load_settings
from .records import CaseRecord, RunNotFound, read_cases, read_run_info, resolve_run, sort_cases
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
