"""``modelopt github ...``: the steps the bundled action (action.yml) calls.

The action's logic lives in the package, not in action.yml, so that it is unit-tested in
Python; action.yml only wires its inputs to these commands. None of them fails a check on
its own account for a missing baseline or a comment it could not post; the verdict does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import find_project, load_settings
from ..records.store import read_cases, resolve_run
from .api import GitHubClient, GitHubError
from .artifact import (
    DEFAULT_ARTIFACT,
    REPORT_ARTIFACT,
    VIEWER_ARTIFACT,
    NoBaseline,
    artifact_name,
    fetch_baseline,
)
from .comment import (
    _SEE_SUMMARY,
    DEFAULT_MARKER,
    REPLAY_HEADING,
    comment_body,
    marker_line,
    replay_note,
    upsert_comment,
    with_viewer_link,
)
from .runner import COMMENT_EVENTS, Console, RunnerEnv, append_summary, report_outputs

if TYPE_CHECKING:
    import argparse


def cmd_baseline(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    try:
        run_dir = fetch_baseline(
            env,
            Path(args.out),
            artifact=args.artifact,
            fallback=args.fallback,
            branch=args.branch,
            workflow=args.workflow,
            required=args.require,
        )
    except NoBaseline as exc:
        console.outputs(env.output, {"found": "false", "baseline-dir": ""})
        if args.require:
            console.error(exc.reason, title="No baseline")
            return 1
        console.annotate(exc.level, exc.reason, title="No baseline")
        return 0
    resolved = str(run_dir.resolve())
    console.line(resolved)
    console.outputs(env.output, {"found": "true", "baseline-dir": resolved})
    return 0


def _read_markdown(path: str, console: Console) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.warning(f"No report to show: cannot read {path} ({exc.__class__.__name__}).")
        return None


def cmd_summary(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    markdown = _read_markdown(args.file, console)
    if markdown is None:
        return 0
    if not env.step_summary:
        console.notice("GITHUB_STEP_SUMMARY is not set (not in GitHub Actions): no job summary.")
        return 0
    append_summary(Path(env.step_summary), markdown, env.token)
    console.line(f"appended {args.file} to the job summary")
    return 0


def find_pull(env: RunnerEnv, client: GitHubClient) -> int | None:
    """The pull request a ``workflow_run`` event's run was for, from trusted data only.

    The event names the run's head commit; the pull request is the open one whose head is
    that commit. Nothing the untrusted run uploaded (a PR number in a file) is believed: it
    could point the comment at another pull request.
    """
    run = env.workflow_run
    sha = str(run.get("head_sha") or "")
    if run.get("event") not in ("pull_request", "pull_request_target") or not sha:
        return None
    listed = run.get("pull_requests")
    for pr in listed if isinstance(listed, list) else []:
        head = pr.get("head") if isinstance(pr, dict) else None
        if isinstance(head, dict) and head.get("sha") == sha and pr.get("number"):
            return int(pr["number"])
    head_repo = run.get("head_repository")
    owner = head_repo.get("owner") if isinstance(head_repo, dict) else None
    login = owner.get("login") if isinstance(owner, dict) else None
    branch = run.get("head_branch")
    if not login or not branch:
        return None
    for pr in client.pulls_from(env.repository, f"{login}:{branch}"):
        head = pr.get("head")
        if isinstance(head, dict) and head.get("sha") == sha and pr.get("number"):
            return int(pr["number"])
    return None


def cmd_comment(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    if env.event_name not in COMMENT_EVENTS:
        console.notice(
            f"No PR comment on a {env.event_name or 'non-GitHub'} event (pull requests only); "
            "the job summary has the report."
        )
        return 0
    try:
        marker = marker_line(args.marker)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    markdown = _read_markdown(args.file, console)
    if markdown is None:
        return 0
    unable = "The PR comment could not be posted"
    if not env.token:
        console.warning(
            f"{unable}: no GITHUB_TOKEN (the action's `github-token` input). {_SEE_SUMMARY}"
        )
        return 0
    client = env.client()
    body = comment_body(markdown, args.marker, env.token)
    try:
        number = env.pr_number
        if env.event_name == "workflow_run" and env.repository:
            number = find_pull(env, client)
        if number is None or not env.repository:
            console.warning(
                f"{unable}: the event names no open pull request (for a workflow_run event: "
                f"none whose head is the run's commit). {_SEE_SUMMARY}"
            )
            return 0
        result = upsert_comment(client, env.repository, number, body, marker)
    except GitHubError as exc:
        console.warning(f"{unable}: {exc} {_SEE_SUMMARY}", title="No PR comment")
        return 0
    console.line(f"{result.action} the PR comment {result.html_url}")
    console.outputs(env.output, {"comment-url": result.html_url})
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    values = report_outputs(Path(args.report_json), Path(args.md) if args.md else None)
    if values["verdict"] == "error":
        console.error(
            f"The report {args.report_json} cannot be read: the verdict is unknown, so this "
            "check fails. See the evals step's log."
        )
    elif not values["report-json"]:
        console.warning(f"No report at {args.report_json}: verdict is none.")
    console.outputs(env.output, values)
    console.line(f"verdict={values['verdict']} pass-rate={values['pass-rate'] or '-'}")
    return 1 if values["verdict"] == "error" else 0


def cmd_names(args: argparse.Namespace) -> int:
    """The artifact names of this job and matrix leg, as step outputs."""
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    parts = {"job": args.job, "matrix": args.matrix, "working_directory": args.working_directory}
    values = {
        "baseline-artifact": artifact_name(args.baseline, **parts),
        "report-artifact": artifact_name(REPORT_ARTIFACT, **parts),
        "viewer-artifact": artifact_name(VIEWER_ARTIFACT, **parts),
    }
    console.outputs(env.output, values)
    for name, value in values.items():
        console.line(f"{name}: {value}")
    return 0


def cmd_replay_note(args: argparse.Namespace) -> int:
    console = Console(os.environ.get("GITHUB_TOKEN") or None)
    try:
        run_dir = resolve_run(args.run, load_settings(find_project(Path.cwd())).dir / "runs")
        note = replay_note(read_cases(run_dir))
    except Exception as exc:  # a note is optional: never fail the job over it
        console.notice(f"No replay note: {exc}")
        return 0
    if note is None:
        return 0
    md = Path(args.md)
    existing = md.read_text(encoding="utf-8") if md.is_file() else ""
    if REPLAY_HEADING in existing:
        return 0
    separator = "" if not existing.strip() else "\n" if existing.endswith("\n") else "\n\n"
    with md.open("a", encoding="utf-8") as handle:
        handle.write(separator + note + "\n")
    console.line(f"added the replay note to {md}")
    return 0


def cmd_viewer_link(args: argparse.Namespace) -> int:
    """Link the run viewer's artifact from the Markdown report (so from the job summary and
    the PR comment, which are made from it). A link is optional: never fail the job."""
    console = Console(os.environ.get("GITHUB_TOKEN") or None)
    md = Path(args.md)
    try:
        linked = with_viewer_link(md.read_text(encoding="utf-8"), args.url)
        md.write_text(linked, encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        console.notice(f"No link to the run viewer: {exc}")
        return 0
    console.line(f"linked the run viewer from {md}")
    return 0


def add_commands(sub: Any) -> None:
    """``modelopt github ...``: what the bundled action's steps call."""
    parser = sub.add_parser(
        "github",
        help=(
            "GitHub Actions steps: names, baseline, summary, comment, outputs, replay-note, "
            "viewer-link"
        ),
        description=(
            "The bundled GitHub Action's steps. They read the runner's GITHUB_* variables and "
            "the event payload, and the token from GITHUB_TOKEN only; none of them fails the "
            "job for a missing baseline or a comment it could not post."
        ),
    )
    commands = parser.add_subparsers(dest="github_cmd", required=True)

    baseline = commands.add_parser(
        "baseline", help="download the base branch's saved run (the baseline artifact)"
    )
    baseline.add_argument("--out", required=True, help="unpack the artifact into this directory")
    baseline.add_argument("--artifact", default=DEFAULT_ARTIFACT, help="the artifact's name")
    baseline.add_argument(
        "--fallback", help="a name to take when a run has no --artifact (an older release's)"
    )
    baseline.add_argument(
        "--workflow", help="the workflow file whose runs hold it (default: this run's own)"
    )
    baseline.add_argument("--branch", help="the branch to look on (default: the PR's base)")
    baseline.add_argument("--require", action="store_true", help="exit 1 when there is no baseline")
    baseline.set_defaults(fn=cmd_baseline)

    names = commands.add_parser(
        "names", help="the artifact names of this job and matrix leg (step outputs)"
    )
    names.add_argument("--baseline", default=DEFAULT_ARTIFACT, help="the baseline-artifact input")
    names.add_argument("--job", default="", help="the job's id (github.job)")
    names.add_argument("--matrix", default="", help="the job's matrix values, toJSON(matrix)")
    names.add_argument("--working-directory", default=".", help="the project's directory")
    names.set_defaults(fn=cmd_names)

    summary = commands.add_parser("summary", help="append a Markdown file to the job summary")
    summary.add_argument("file")
    summary.set_defaults(fn=cmd_summary)

    comment = commands.add_parser("comment", help="post or update the sticky PR comment")
    comment.add_argument("file")
    comment.add_argument(
        "--marker", default=DEFAULT_MARKER, help="key of the hidden marker (one comment per key)"
    )
    comment.set_defaults(fn=cmd_comment)

    outputs = commands.add_parser("outputs", help="write verdict, pass-rate and report paths")
    outputs.add_argument("report_json", metavar="REPORT_JSON")
    outputs.add_argument("--md", help="the Markdown report (its path becomes report-md)")
    outputs.set_defaults(fn=cmd_outputs)

    note = commands.add_parser(
        "replay-note", help="note the cases replay mode could not run in the Markdown report"
    )
    note.add_argument("run", metavar="RUN", help="run directory, run id or 'latest'")
    note.add_argument("--md", required=True, help="the Markdown file to append the note to")
    note.set_defaults(fn=cmd_replay_note)

    link = commands.add_parser(
        "viewer-link", help="link the run viewer's artifact from the Markdown report"
    )
    link.add_argument("url", metavar="URL", help="the artifact's address (upload-artifact's)")
    link.add_argument("--md", required=True, help="the Markdown report to add the link to")
    link.set_defaults(fn=cmd_viewer_link)
