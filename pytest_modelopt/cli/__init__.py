"""The ``modelopt`` command: runs, verdicts, the response cache, the local model, and
the command groups of ``optimize`` (fine-tuning) and ``github`` (the Action's steps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError
from ..github.commands import add_commands as add_github_commands
from ..optimize.commands import add_commands
from ..records.store import RunNotFound, RunUnreadable
from ..untrusted import for_terminal
from .init import cmd_init
from .labels import add_commands as add_label_commands
from .local import cmd_cache, cmd_serve_local
from .openai_evals import add_command as add_import_command
from .openai_export import add_command as add_export_command
from .plan import add_command as add_plan_command
from .runs import cmd_compare, cmd_merge, cmd_report, cmd_runs, cmd_show

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelopt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pytest-modelopt {version()}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    init = sub.add_parser(
        "init",
        help="start evals in this project: settings, a first eval and its dataset (no prompt "
        "yet), .gitignore lines; never overwrites a file",
    )
    init.add_argument(
        "--name",
        default="triage",
        help="the first eval's name: tests/evals/test_NAME.py, data/NAME.jsonl, prompts/NAME.yaml",
    )
    init.add_argument(
        "--github",
        action="store_true",
        help="also write the GitHub Action's workflows: .github/workflows/evals.yml (the PR "
        "gate, and the baseline on pushes to main) and evals-comment.yml (forks' comments)",
    )
    init.add_argument(
        "--skill",
        action="store_true",
        help="also write the coding agents' skill: .agents/skills/pytest-modelopt/SKILL.md",
    )
    init.set_defaults(fn=cmd_init)

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
    report.add_argument("--html", help="write the run viewer (an HTML page) here")
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
        "--chat-format",
        metavar="NAME",
        help="llama-cpp-python's chat format; chatml-function-calling makes tool_choice "
        "auto return tool calls (the model's own template drops tools)",
    )
    serve.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="optional: run this command with OPENAI_BASE_URL set, then stop the server",
    )
    serve.set_defaults(fn=cmd_serve_local)

    add_plan_command(sub)
    add_import_command(sub)
    add_export_command(sub)

    add_label_commands(sub)
    add_commands(sub)

    add_github_commands(sub)
    return parser


def version() -> str:
    """The installed distribution's version (what pip installed), else the source's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pytest-modelopt")
    except PackageNotFoundError:
        from .. import __version__  # a source tree that pip never installed: rare

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, RunNotFound, RunUnreadable) as exc:
        print(for_terminal(f"modelopt: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
