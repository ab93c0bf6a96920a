"""The Actions runner's side: its environment, workflow commands, outputs, job summary.

Everything reads the runner's standard environment (``GITHUB_*``). The token comes from
``GITHUB_TOKEN`` only, is never an argument, and is redacted from every message printed
and every file written.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records.store import RunUnreadable, read_model
from ..secrets import redact_token
from ..verdict.document import EvalReport
from .api import DEFAULT_API_URL, GitHubClient

PR_EVENTS = ("pull_request", "pull_request_target")


#: Events whose run may post the PR comment: a pull request's, or the trusted second
#: workflow of the two-workflow pattern, started by a pull request's run finishing.
COMMENT_EVENTS = (*PR_EVENTS, "workflow_run")


#: GitHub refuses a step's summary over 1 MiB (and then shows none of it).
SUMMARY_LIMIT = 1024 * 1024


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, title: str | None = None) -> str:
    """``::notice title=T::message``, escaped so a message cannot inject another command."""
    props = f" title={_escape_property(title)}" if title else ""
    return f"::{kind}{props}::{_escape_data(message)}"


class Console:
    """Prints annotations and lines with the token redacted: the only way this module speaks."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def clean(self, text: str) -> str:
        return redact_token(text, self.token)

    def line(self, text: str, *, err: bool = False) -> None:
        print(self.clean(text), file=sys.stderr if err else sys.stdout, flush=True)

    def annotate(self, kind: str, message: str, title: str | None = None) -> None:
        print(workflow_command(kind, self.clean(message), title), flush=True)

    def notice(self, message: str, title: str | None = None) -> None:
        self.annotate("notice", message, title)

    def warning(self, message: str, title: str | None = None) -> None:
        self.annotate("warning", message, title)

    def error(self, message: str, title: str | None = None) -> None:
        self.annotate("error", message, title)

    def outputs(self, path: str, values: Mapping[str, str]) -> None:
        """Step outputs; without ``GITHUB_OUTPUT`` (a local run) they go to stderr."""
        cleaned = {name: self.clean(value) for name, value in values.items()}
        if path:
            write_outputs(Path(path), cleaned)
        else:
            for name, value in cleaned.items():
                self.line(f"output {name}={value}", err=True)


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    """Append ``name<<DELIM`` blocks: safe for any value, newlines included."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


@dataclass(frozen=True)
class RunnerEnv:
    """What a GitHub Actions step sees: the ``GITHUB_*`` variables and the event payload."""

    api_url: str = DEFAULT_API_URL
    repository: str = ""
    event_name: str = ""
    event: Mapping[str, Any] = field(default_factory=dict)
    workflow_ref: str = ""
    run_id: str = ""
    server_url: str = "https://github.com"
    step_summary: str = ""
    output: str = ""
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunnerEnv:
        env = os.environ if environ is None else environ
        return cls(
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            repository=env.get("GITHUB_REPOSITORY", ""),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=_read_event(env.get("GITHUB_EVENT_PATH", "")),
            workflow_ref=env.get("GITHUB_WORKFLOW_REF", ""),
            run_id=env.get("GITHUB_RUN_ID", ""),
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            step_summary=env.get("GITHUB_STEP_SUMMARY", ""),
            output=env.get("GITHUB_OUTPUT", ""),
            token=env.get("GITHUB_TOKEN") or None,
        )

    def client(self, **options: Any) -> GitHubClient:
        return GitHubClient(self.token, self.api_url, **options)

    @property
    def workflow_file(self) -> str | None:
        """``ci.yml`` from ``owner/name/.github/workflows/ci.yml@refs/heads/main``."""
        path = self.workflow_ref.split("@", 1)[0]
        marker = ".github/workflows/"
        if marker not in path:
            return None
        name = path.split(marker, 1)[1]
        return name or None

    @property
    def workflow_run(self) -> Mapping[str, Any]:
        """The run that started a ``workflow_run`` event ({} for any other event)."""
        run = self.event.get("workflow_run") if self.event_name == "workflow_run" else None
        return run if isinstance(run, Mapping) else {}

    @property
    def pr_number(self) -> int | None:
        if self.event_name == "workflow_run":
            return None  # found by find_pull(), against the run's head commit
        pr = self.event.get("pull_request")
        number = pr.get("number") if isinstance(pr, Mapping) else None
        number = number if number is not None else self.event.get("number")
        try:
            return int(number) if number is not None else None
        except (TypeError, ValueError):
            return None

    def base_branch(self) -> str | None:
        """The branch whose baseline a run compares with: the PR's base, else the default."""
        pr = self.event.get("pull_request")
        if self.event_name in PR_EVENTS and isinstance(pr, Mapping):
            base = pr.get("base")
            if isinstance(base, Mapping) and base.get("ref"):
                return str(base["ref"])
        group = self.event.get("merge_group")
        if self.event_name == "merge_group" and isinstance(group, Mapping):
            ref = str(group.get("base_ref") or "")
            if ref:
                return ref.removeprefix("refs/heads/")
        repo = self.event.get("repository")
        if isinstance(repo, Mapping) and repo.get("default_branch"):
            return str(repo["default_branch"])
        return None


def _read_event(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cut_to_units(text: str, units: int) -> str:
    """``text`` shortened to at most ``units`` UTF-16 code units, at a line end if near."""
    cut = text[:units]
    while (excess := utf16_units(cut) - units) > 0:
        cut = cut[: len(cut) - excess]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > len(cut) * 3 // 4 else cut


def utf16_units(text: str) -> int:
    """Length as GitHub counts it, conservatively (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def append_summary(path: Path, markdown: str, token: str | None = None) -> None:
    """Append to the step summary, kept under GitHub's 1 MiB so it is not dropped whole."""
    text = redact_token(markdown, token).rstrip("\n") + "\n"
    existing = path.stat().st_size if path.exists() else 0
    prefix = "\n" if existing else ""
    room = SUMMARY_LIMIT - existing - len(prefix) - 1024
    if len(text.encode("utf-8")) > room:
        note = "\n\n*(the report was cut to fit GitHub's 1 MiB job-summary limit)*\n"
        encoded = text.encode("utf-8")[: max(0, room - len(note))]
        text = encoded.decode("utf-8", "ignore") + note
    with path.open("a", encoding="utf-8") as handle:
        handle.write(prefix + text)


def report_outputs(report_json: Path, md: Path | None = None) -> dict[str, str]:
    """``verdict``, ``pass-rate`` (pooled over the evals' cases that ran: graded or errored),
    and the report paths.

    ``verdict`` is ``pass``, ``fail``, ``none`` (no report: no eval ran) or ``error`` (a
    report that cannot be read: the verdict is unknown, which is never a pass).
    """
    verdict, rate = "none", ""
    report = None
    if report_json.exists():
        try:
            report = read_model(report_json, EvalReport)
        except RunUnreadable:
            verdict = "error"
    if report is not None:
        graded = sum(row.graded for row in report.summary.evals)
        passed = sum(row.passed for row in report.summary.evals)
        # a case that ran and errored counts against the rate: an eval that failed to run
        # must lower it, not vanish from it (cases that could not run at all are left out)
        errored = sum(row.errors - row.errors_not_run for row in report.summary.evals)
        if graded + errored:
            rate = f"{passed / (graded + errored):.4f}"
        verdict = "fail" if report.verdict == "fail" else ("pass" if graded else "none")
    return {
        "verdict": verdict,
        "pass-rate": rate,
        "report-json": str(report_json.resolve()) if report is not None else "",
        "report-md": str(md.resolve()) if md is not None and md.is_file() else "",
    }
