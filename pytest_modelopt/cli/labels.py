"""``modelopt review`` and ``modelopt labels merge|check``: human labels, without pytest.

``review`` walks a run's cases in the terminal and appends one label per answer, at once,
so a review stopped at any point keeps what was said. ``labels merge`` combines files and
refuses to guess on a conflict. ``labels check`` is the calibration report: each LLM judge
of a run against the labels, as the verdict policy sees it.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..config import find_project
from ..records.labels import (
    LabelsError,
    append_labels,
    is_judge,
    label_for,
    merge_labels,
    output_sha256,
    read_label_files,
    read_labels,
    write_labels,
)
from ..records.store import read_cases, read_run_info, resolve_run, sort_cases
from ..reports.terminal import calibration_lines
from ..run import labels_for, settings_for
from ..untrusted import for_terminal
from ..verdict.calibration import calibrate
from ..verdict.judge import Policy

if TYPE_CHECKING:
    import argparse

    from ..records.models import CaseRecord, GradeRecord

#: Longest text shown for one input message or output; the rest is counted, not shown.
SHOWN = 4000


def _say(text: str = "", *, err: bool = False) -> None:
    """Print a line made safe: runs hold untrusted text (model output, dataset rows)."""
    print(for_terminal(text), file=sys.stderr if err else sys.stdout, flush=True)


def _problems(command: str, exc: LabelsError) -> int:
    for problem in exc.problems:
        _say(f"modelopt {command}: {problem}", err=True)
    return 2


def add_commands(sub: Any) -> None:
    review = sub.add_parser(
        "review", help="review a run's cases in the terminal and append human labels to FILE"
    )
    review.add_argument("run", nargs="?", default="latest", help="run directory, id or 'latest'")
    review.add_argument("--eval", action="append", help="only this eval (repeatable)")
    review.add_argument("--model", action="append", help="only this model (repeatable)")
    review.add_argument(
        "--status",
        action="append",
        choices=["passed", "failed"],
        help="only cases with this status (repeatable)",
    )
    review.add_argument(
        "--grades",
        action="store_true",
        help="label each LLM judge's grade (what calibrates judges), not the whole case",
    )
    review.add_argument(
        "--reviewer", help="your name (default: $MODELOPT_REVIEWER, git's user.name, login)"
    )
    review.add_argument("-o", "--output", required=True, help="labels file to append to")
    review.set_defaults(fn=cmd_review)

    labels = sub.add_parser("labels", help="human labels files: merge them, check judges")
    commands = labels.add_subparsers(dest="labels_cmd", required=True)
    merge = commands.add_parser(
        "merge", help="combine labels files; conflicts fail unless --prefer says how to resolve"
    )
    merge.add_argument("files", nargs="+", help="labels files (JSONL)")
    merge.add_argument("-o", "--output", required=True, help="the merged file (replaced)")
    merge.add_argument(
        "--prefer",
        choices=["latest", "pass", "fail"],
        help="resolve a conflict with its latest label, or its latest pass or fail",
    )
    merge.set_defaults(fn=cmd_labels_merge)
    check = commands.add_parser(
        "check", help="each LLM judge of a run against the labels: the calibration report"
    )
    check.add_argument("files", nargs="*", help="labels files (default: the labels setting)")
    check.add_argument("--run", default="latest", help="run directory, id or 'latest'")
    check.set_defaults(fn=cmd_labels_check)


def cmd_labels_merge(args: argparse.Namespace) -> int:
    try:
        found = read_label_files(Path(f) for f in args.files)
    except LabelsError as exc:
        return _problems("labels merge", exc)
    merged, conflicts, collapsed = merge_labels(found, args.prefer)
    for conflict in conflicts:
        _say(f"conflict: {conflict.describe()}", err=True)
    if conflicts and args.prefer is None:
        _say(
            f"modelopt labels merge: {len(conflicts)} conflicts, nothing written: settle them "
            "in the files, or pass --prefer latest|pass|fail",
            err=True,
        )
        return 1
    write_labels(Path(args.output), merged)
    resolved = (
        f", {len(conflicts)} conflicts resolved (--prefer {args.prefer})" if conflicts else ""
    )
    _say(
        f"merged {len(found)} labels from {len(args.files)} files into {args.output}: "
        f"{len(merged)} labels, {collapsed} duplicates collapsed{resolved}"
    )
    return 0


def cmd_labels_check(args: argparse.Namespace) -> int:
    root = find_project(Path.cwd())
    settings = settings_for(root)
    try:
        if args.files:
            labels = read_label_files(Path(f) for f in args.files)
        else:
            labels = labels_for(settings, root, Path.cwd())
    except LabelsError as exc:
        return _problems("labels check", exc)
    run_dir = resolve_run(args.run, settings.dir / "runs")
    cases = list(read_cases(run_dir, slim=True))
    calibration = calibrate(cases, labels, Policy.from_settings(settings).calibration)
    _say(f"{len(labels)} labels against run {read_run_info(run_dir).run_id}")
    if not calibration:
        _say("no LLM judge of this run has labels or a calibration policy")
        return 0
    for line in calibration_lines(calibration):
        _say(line)
    for cal in calibration:
        if cal.calibrated is False:
            _say(f"{cal.eval}: judge {cal.grader!r}: {cal.cells()['needed']}")
    return 1 if any(cal.calibrated is False for cal in calibration) else 0


def _reviewer(given: str | None) -> str:
    """Who is reviewing: the option, the environment, git's user name, the login."""
    if given:
        return given
    if os.environ.get("MODELOPT_REVIEWER"):
        return os.environ["MODELOPT_REVIEWER"]
    try:
        name = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        name = ""
    return name or getpass.getuser()


def _clip(text: str) -> str:
    if len(text) <= SHOWN:
        return text
    return f"{text[:SHOWN]}... ({len(text) - SHOWN} more characters)"


def _input_lines(value: Any) -> list[str]:
    if value is None:
        return ["  (none recorded)"]
    if isinstance(value, str):
        return [f"  {line}" for line in _clip(value).splitlines()]
    if isinstance(value, list):
        out = []
        for message in value:
            if isinstance(message, dict):
                content = message.get("content")
                text = content if isinstance(content, str) else json.dumps(content)
                role = message.get("role", "?")
                lines = _clip(text).splitlines() or [""]
                out.append(f"  {role}: {lines[0]}")
                out += [f"    {line}" for line in lines[1:]]
            else:
                out.append(f"  {_clip(json.dumps(message))}")
        return out
    return [f"  {_clip(json.dumps(value, default=str))}"]


def _show(case: CaseRecord, position: str, grade: GradeRecord | None) -> None:
    sample = f" sample {case.sample}" if case.sample else ""
    _say("")
    _say(f"[{position}] {case.eval} [{case.model}] case {case.case_id}{sample}: {case.status}")
    _say("input:")
    for line in _input_lines(case.input):
        _say(line)
    _say("output:")
    for line in (_clip(case.output).splitlines() or [""]) if case.output is not None else ["-"]:
        _say(f"  {line}")
    _say("grades:")
    for g in case.grades:
        mark = "ok  " if g.passed else "FAIL"
        here = "  <- this grade" if grade is not None and g is grade else ""
        _say(f"  {mark} {g.name}: {g.score:g} {_clip(g.reason)}{here}")


def _ask(question: str) -> str | None:
    """One answer from stdin; None at its end (a closed pipe, Ctrl-D) or on Ctrl-C."""
    print(for_terminal(question), end="", flush=True)
    try:
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        return None
    if not sys.stdin.isatty():  # piped answers: echo them, so the transcript reads
        print(for_terminal(line.strip()), flush=True)
    return None if line == "" else line.strip()


def cmd_review(args: argparse.Namespace) -> int:
    settings = settings_for(find_project(Path.cwd()))
    run_dir = resolve_run(args.run, settings.dir / "runs")
    run_id = read_run_info(run_dir).run_id
    out = Path(args.output)
    reviewer = _reviewer(args.reviewer)
    try:
        earlier = read_labels(out) if out.exists() else []
    except LabelsError as exc:
        return _problems("review", exc)
    done = {
        (lab.eval, lab.case_id, lab.model, lab.sample, lab.grader, lab.output_sha256)
        for lab in earlier
        if lab.reviewer == reviewer
    }
    todo: list[tuple[CaseRecord, GradeRecord | None]] = []
    for case in sort_cases(read_cases(run_dir)):
        if case.status not in ("passed", "failed"):
            continue  # nothing to judge: it errored, was skipped, or is pending
        if args.eval and case.eval not in args.eval:
            continue
        if (args.model and case.model not in args.model) or (
            args.status and case.status not in args.status
        ):
            continue
        targets = [g for g in case.grades if is_judge(g)] if args.grades else [None]
        sha = output_sha256(case.output)
        for grade in targets:
            name = None if grade is None else grade.name
            if (case.eval, case.case_id, case.model, case.sample, name, sha) not in done:
                todo.append((case, grade))
    if not todo:
        _say(f"nothing to review in run {run_id} (for {reviewer}, with these filters)")
        return 0
    _say(
        f"reviewing {len(todo)} {'grades' if args.grades else 'cases'} of run {run_id} as "
        f"{reviewer}; labels go to {out}"
    )
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for number, (case, grade) in enumerate(todo, start=1):
        _show(case, f"{number}/{len(todo)}", grade)
        what = "this grade" if grade is not None else "this case"
        answer = _verdict(f"{what}: [p]ass, [f]ail, [s]kip, [q]uit? ")
        if answer == "quit":
            break
        if answer == "skip":
            counts["skip"] += 1
            continue
        note = _ask("note (enter for none): ")
        if note is None:
            break
        label = label_for(
            case, answer, reviewer=reviewer, run_id=run_id, grade=grade, note=note or ""
        )
        append_labels(out, [label])
        counts[answer] += 1
    _say(
        f"{counts['pass'] + counts['fail']} labels appended to {out} ({counts['pass']} pass, "
        f"{counts['fail']} fail), {counts['skip']} skipped"
    )
    return 0


def _verdict(question: str) -> Literal["pass", "fail", "skip", "quit"]:
    """Ask until the answer is one of p/f/s/q (or the words); the end of input quits."""
    choices: dict[str, Literal["pass", "fail", "skip", "quit"]] = {
        "p": "pass",
        "pass": "pass",
        "f": "fail",
        "fail": "fail",
        "s": "skip",
        "skip": "skip",
        "q": "quit",
        "quit": "quit",
    }
    while True:
        answer = _ask(question)
        if answer is None:
            return "quit"
        if answer.lower() in choices:
            return choices[answer.lower()]
        _say("answer p, f, s or q")
