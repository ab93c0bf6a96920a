"""``modelopt github ...``: the action's steps, over real HTTP to a local fake GitHub API.

Each test runs the CLI in-process with a realistic runner environment (``GITHUB_*``, an
event payload file, ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files) and checks what a
workflow would see: stdout annotations, the outputs file, the summary, the PR's comments,
the exit status, and the requests the fake received.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.cli import main
from pytest_modelopt.github.artifact import DEFAULT_ARTIFACT
from pytest_modelopt.github.comment import (
    REPLAY_HEADING,
)
from pytest_modelopt.github.runner import SUMMARY_LIMIT
from pytest_modelopt.records.models import CaseRecord, ErrorRecord, GradeRecord, RunInfo
from pytest_modelopt.records.store import (
    RunWriter,
    read_run_info,
    write_json_atomic,
    write_run_info,
)
from pytest_modelopt.verdict.document import EvalReport
from pytest_modelopt.verdict.summary import summarize
from tests.support.fake_github import FakeGitHub
from tests.support.github_output import parse_github_output

if TYPE_CHECKING:
    from collections.abc import Iterator


REPO = "acme/evals"


TOKEN = "ghs_" + "A1b2C3d4E5f6" * 3  # shaped like a real installation token


READONLY = "readonly-fork-token-7d1e9a"  # shaped like nothing: redacted because it is the token


WORKFLOW = "evals.yml"


RUN_ID = 9000


MARKER = "<!-- pytest-modelopt:evals -->"


@dataclass
class Result:
    code: int
    out: str
    err: str
    outputs: dict[str, str]
    raw_outputs: str

    def annotations(self, kind: str) -> list[str]:
        return [line for line in self.out.splitlines() if line.startswith(f"::{kind}")]


class Runner:
    """A GitHub Actions step's environment around ``modelopt github ...``."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        server: FakeGitHub,
    ) -> None:
        self.tmp = tmp_path
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.server = server
        self.output = tmp_path / "github_output"
        self.summary = tmp_path / "step_summary"
        self.event_path = tmp_path / "event.json"
        self.output.write_text("")
        self.summary.write_text("")
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": server.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/{WORKFLOW}@refs/pull/7/merge",
            "GITHUB_RUN_ID": str(RUN_ID),
            "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_TOKEN": TOKEN,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        self.pull_request()

    def event(self, name: str, payload: dict[str, Any]) -> None:
        self.monkeypatch.setenv("GITHUB_EVENT_NAME", name)
        self.event_path.write_text(json.dumps(payload))

    def pull_request(self, number: int = 7, base: str = "main", fork: bool = False) -> None:
        head_repo = "mallory/evals" if fork else REPO
        self.event(
            "pull_request",
            {
                "action": "synchronize",
                "number": number,
                "pull_request": {
                    "number": number,
                    "title": "$(curl evil) `rm -rf` <!-- -->",
                    "base": {"ref": base, "repo": {"full_name": REPO}},
                    "head": {"ref": "feature", "repo": {"full_name": head_repo}},
                },
                "repository": {"full_name": REPO, "default_branch": "main"},
            },
        )

    def token(self, value: str | None) -> None:
        if value is None:
            self.monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("GITHUB_TOKEN", value)

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        before = self.output.read_text()
        code = main(["github", *args])
        captured = self.capsys.readouterr()
        raw = self.output.read_text()[len(before) :]
        return Result(code, captured.out, captured.err, parse_github_output(raw), raw)

    def everything_written(self) -> str:
        """All a workflow's log and files would show, to check that no secret is in it."""
        files = [p for p in self.tmp.rglob("*") if p.is_file() and p.suffix != ".zip"]
        return "\n".join(p.read_text(errors="replace") for p in files)


@pytest.fixture(scope="module")
def _fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def fake(_fake: FakeGitHub) -> FakeGitHub:
    _fake.reset()
    _fake.add_repo(REPO)
    _fake.add_token(TOKEN)
    _fake.add_token(READONLY, write=False)
    return _fake


@pytest.fixture
def runner(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake: FakeGitHub,
) -> Runner:
    for name in ("GITHUB_BASE_REF", "GITHUB_HEAD_REF", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return Runner(tmp_path, monkeypatch, capsys, fake)


def case(
    case_id: str, status: str = "passed", *, eval_name: str = "test_triage", kind: str = ""
) -> CaseRecord:
    error = ErrorRecord(kind=kind, message=f"{kind} for {case_id}") if kind else None
    grades = [] if status == "error" else [GradeRecord(name="g", score=1.0, passed=True)]
    if status == "failed":
        grades = [GradeRecord(name="g", score=0.0, passed=False)]
    return CaseRecord(
        eval=eval_name,
        nodeid=f"tests/test_x.py::{eval_name}[{case_id}]",
        model="gpt-4.1-mini",
        case_id=case_id,
        status=status,  # type: ignore[arg-type]
        grades=grades,
        error=error,
    )


def make_run(root: Path, run_id: str, cases: list[CaseRecord]) -> Path:
    run_dir = root / run_id
    info = RunInfo(
        run_id=run_id,
        started_at="2026-01-01T00:00:00+00:00",
        plugin_version="0.1.0",
        models=["gpt-4.1-mini"],
    )
    write_run_info(run_dir, info)
    writer = RunWriter(run_dir, "main")
    for record in cases:
        writer.append(record)
    writer.close()
    (root / "latest").write_text(run_id)
    return run_dir


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def run_artifact(tmp_path: Path, run_id: str = "20260101-000000-base01") -> bytes:
    """A baseline artifact as actions/upload-artifact makes it from ``.modelopt/runs``."""
    runs = tmp_path / "made" / "runs"
    make_run(runs, run_id, [case("t1"), case("t2", "failed")])
    return zip_bytes(
        {str(p.relative_to(runs.parent)): p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    )


def seed_baseline(fake: FakeGitHub, data: bytes, branch: str = "main") -> int:
    run = fake.add_run(REPO, WORKFLOW, branch)
    return fake.add_artifact(REPO, run.id, DEFAULT_ARTIFACT, data).id


def test_baseline_found_unzips_the_run_and_writes_outputs(
    runner: Runner, fake: FakeGitHub, tmp_path: Path
) -> None:
    good = seed_baseline(fake, run_artifact(tmp_path))
    # newer, but not usable: failed, another workflow, another branch, a PR event, this run
    failed = fake.add_run(REPO, WORKFLOW, "main", conclusion="failure")
    fake.add_artifact(REPO, failed.id, DEFAULT_ARTIFACT, b"not a zip")
    fake.add_run(REPO, "other.yml", "main")
    fake.add_run(REPO, WORKFLOW, "feature")
    fake.add_run(REPO, WORKFLOW, "main", event="pull_request")
    current = fake.add_run(REPO, WORKFLOW, "main", run_id=RUN_ID)
    fake.add_artifact(REPO, current.id, DEFAULT_ARTIFACT, b"not a zip")

    result = runner.run("baseline", "--out", "baseline")

    assert result.code == 0, result.out
    run_dir = Path(result.out.strip().splitlines()[-1])
    assert run_dir == (tmp_path / "baseline" / "runs" / "20260101-000000-base01").resolve()
    assert read_run_info(run_dir).run_id == "20260101-000000-base01"
    assert result.outputs == {"found": "true", "baseline-dir": str(run_dir)}
    (listing,) = fake.calls("GET", f"/actions/workflows/{WORKFLOW}/runs")
    assert listing.query == {
        "branch": "main",
        "status": "success",
        "event": "push",
        "per_page": "20",
    }
    (download,) = fake.calls("GET", f"/actions/artifacts/{good}/zip")
    assert download.headers["authorization"] == f"Bearer {TOKEN}"
    (blob,) = fake.calls("GET", "/_blob/")
    assert "authorization" not in blob.headers
    assert fake.blob_auth_leaks == []


def test_baseline_takes_the_next_run_when_the_newest_artifact_expired(
    runner: Runner, fake: FakeGitHub, tmp_path: Path
) -> None:
    seed_baseline(fake, run_artifact(tmp_path, "20260101-000000-older1"))
    newer = fake.add_run(REPO, WORKFLOW, "main")
    fake.add_artifact(REPO, newer.id, DEFAULT_ARTIFACT, b"gone", expired=True)
    fake.add_artifact(REPO, newer.id, "coverage", b"other")

    result = runner.run("baseline", "--out", "b")

    assert result.outputs["found"] == "true"
    assert result.outputs["baseline-dir"].endswith("20260101-000000-older1")


@pytest.mark.parametrize("event", ["push", "schedule"])
def test_baseline_on_push_and_schedule_uses_the_default_branch(
    runner: Runner, fake: FakeGitHub, tmp_path: Path, event: str
) -> None:
    fake.add_repo(REPO, default_branch="trunk")
    seed_baseline(fake, run_artifact(tmp_path), branch="trunk")
    payload: dict[str, Any] = {"schedule": "0 3 * * *"}
    if event == "push":  # a push payload names the default branch; a schedule one does not
        payload = {"ref": "refs/heads/trunk", "repository": {"default_branch": "trunk"}}
    runner.event(event, payload)

    result = runner.run("baseline", "--out", "b")

    assert result.outputs["found"] == "true"
    (listing,) = fake.calls("GET", f"/actions/workflows/{WORKFLOW}/runs")
    assert listing.query["branch"] == "trunk"
    looked_up = any(r.path == f"/repos/{REPO}" for r in fake.requests)
    assert looked_up == (event == "schedule")


def test_branch_option_overrides_the_base(runner: Runner, fake: FakeGitHub, tmp_path: Path) -> None:
    seed_baseline(fake, run_artifact(tmp_path), branch="release")
    result = runner.run("baseline", "--out", "b", "--branch", "release")
    assert result.outputs["found"] == "true"


def test_missing_baseline_is_a_notice_unless_required(runner: Runner, fake: FakeGitHub) -> None:
    result = runner.run("baseline", "--out", "b")

    assert result.code == 0
    (notice,) = result.annotations("notice")
    assert "No successful push run of evals.yml on `main`" in notice
    assert "push to `main`" in notice
    assert "baseline job saves one" in notice
    assert result.outputs == {"found": "false", "baseline-dir": ""}

    required = runner.run("baseline", "--out", "b", "--require")

    assert required.code == 1
    (error,) = required.annotations("error")
    assert "No successful push run" in error
    assert required.outputs["found"] == "false"


def test_a_run_without_the_artifact_says_so(runner: Runner, fake: FakeGitHub) -> None:
    run = fake.add_run(REPO, WORKFLOW, "main")
    fake.add_artifact(REPO, run.id, DEFAULT_ARTIFACT, b"x", expired=True)
    result = runner.run("baseline", "--out", "b", "--artifact", DEFAULT_ARTIFACT)
    (notice,) = result.annotations("notice")
    assert "no unexpired `modelopt-baseline` artifact" in notice
    assert result.code == 0
    assert result.outputs["found"] == "false"


def test_no_token_means_no_baseline(runner: Runner, fake: FakeGitHub, tmp_path: Path) -> None:
    seed_baseline(fake, run_artifact(tmp_path))
    runner.token(None)
    result = runner.run("baseline", "--out", "b")
    (notice,) = result.annotations("notice")
    assert "No GITHUB_TOKEN" in notice
    assert result.code == 0
    assert result.outputs["found"] == "false"
    assert fake.requests == []


def test_an_artifact_without_a_run_is_no_baseline(runner: Runner, fake: FakeGitHub) -> None:
    seed_baseline(fake, zip_bytes({"notes.txt": b"hello"}))
    result = runner.run("baseline", "--out", "b")
    (warning,) = result.annotations("warning")
    assert "holds no run" in warning
    assert result.code == 0
    assert result.outputs["found"] == "false"


@pytest.mark.parametrize(
    "member", ["../evil.txt", "/tmp/evil.txt", "runs/../../evil.txt", "C:/evil.txt", "a\\..\\x"]
)
def test_zip_slip_is_refused_whole(
    runner: Runner, fake: FakeGitHub, tmp_path: Path, member: str
) -> None:
    artifact = zip_bytes({"runs/ok/run.json": b"{}", member: b"pwned"})
    seed_baseline(fake, artifact)

    result = runner.run("baseline", "--out", "sub/b")

    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "Refused the `modelopt-baseline` artifact" in warning
    assert result.outputs["found"] == "false"
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "sub" / "evil.txt").exists()
    assert not (tmp_path / "sub" / "b" / "runs").exists()  # nothing was unpacked
    assert runner.run("baseline", "--out", "sub/b", "--require").code == 1


def test_comment_is_created_then_updated_in_place(runner: Runner, fake: FakeGitHub) -> None:
    report = runner.tmp / "report.md"
    report.write_text("### ✅ every eval passed its checks\n\nfirst run\n")

    first = runner.run("comment", str(report))

    assert first.code == 0, first.out
    (created,) = fake.comments(REPO, 7)
    assert created.body.startswith(MARKER + "\n")
    assert "first run" in created.body
    assert created.login == "github-actions[bot]"
    assert first.outputs == {
        "comment-url": f"https://github.com/{REPO}/pull/7#issuecomment-{created.id}"
    }

    report.write_text("### ❌ 1 check failed\n\nsecond run\n")
    second = runner.run("comment", str(report))

    (updated,) = fake.comments(REPO, 7)
    assert updated.id == created.id
    assert "second run" in updated.body
    assert "first run" not in updated.body
    assert [action for _, action, _ in updated.history] == ["created", "updated"]
    assert updated.updated_at > updated.created_at
    assert second.outputs == first.outputs
    assert len(fake.calls("POST")) == 1
    assert len(fake.calls("PATCH")) == 1

    third = runner.run("comment", str(report))  # same body: nothing to write
    assert len(fake.calls("PATCH")) == 1
    assert third.outputs == first.outputs


def test_the_marked_comment_is_found_on_a_later_page(runner: Runner, fake: FakeGitHub) -> None:
    fake.max_per_page = 50
    for i in range(130):
        if i == 3:  # a person quoting the marker: not the one to edit
            fake.add_comment(REPO, 7, f"why does {MARKER} show up?", login="octocat")
        elif i == 120:
            bot = fake.add_comment(
                REPO, 7, f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot"
            )
        else:
            fake.add_comment(REPO, 7, f"comment {i}")
    report = runner.tmp / "report.md"
    report.write_text("new report")

    result = runner.run("comment", str(report))

    assert result.code == 0
    pages = [r.query.get("page", "1") for r in fake.calls("GET", "/issues/7/comments")]
    assert pages == ["1", "2", "3"]
    assert fake.calls("POST") == []
    (patch,) = fake.calls("PATCH")
    assert patch.path.endswith(f"/issues/comments/{bot.id}")
    assert fake.comments_by_id[bot.id].body.endswith("new report")
    assert len(fake.comments(REPO, 7)) == 130


def test_a_read_only_token_warns_and_posts_nothing(runner: Runner, fake: FakeGitHub) -> None:
    fake.echo_token_in_errors = True
    runner.pull_request(fork=True)
    runner.token(READONLY)
    report = runner.tmp / "report.md"
    report.write_text("report")

    result = runner.run("comment", str(report))

    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "The PR comment could not be posted" in warning
    assert "403" in warning
    assert "fork" in warning
    assert "The job summary has the report." in warning
    assert fake.comments(REPO, 7) == []
    assert result.outputs == {}
    assert READONLY not in result.out + result.err + runner.everything_written()


def test_no_comment_outside_pull_requests(runner: Runner, fake: FakeGitHub) -> None:
    runner.event("push", {"ref": "refs/heads/main", "repository": {"default_branch": "main"}})
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    (notice,) = result.annotations("notice")
    assert "No PR comment on a push event" in notice
    assert fake.requests == []


def test_no_token_warns(runner: Runner, fake: FakeGitHub) -> None:
    runner.token(None)
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "no GITHUB_TOKEN" in warning
    assert fake.requests == []


def test_comment_retries_a_5xx_and_a_429(runner: Runner, fake: FakeGitHub) -> None:
    fake.fault("GET", "/issues/7/comments", 503, headers={"Retry-After": "0"})
    fake.fault("POST", "/issues/7/comments", 429, headers={"Retry-After": "0"})
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    assert result.annotations("warning") == []
    assert len(fake.calls("GET", "/comments")) == 2
    assert len(fake.calls("POST")) == 2
    assert len(fake.comments(REPO, 7)) == 1


def test_retries_are_bounded(runner: Runner, fake: FakeGitHub) -> None:
    fake.fault("GET", "/issues/7/comments", 502, times=10, headers={"Retry-After": "0"})
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "GitHub answered 502" in warning
    assert len(fake.calls("GET")) == 4  # one try and three retries
    assert fake.calls("POST") == []


def test_a_post_that_may_have_landed_is_not_repeated(runner: Runner, fake: FakeGitHub) -> None:
    fake.fault("POST", "/issues/7/comments", 502, headers={"Retry-After": "0"})
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    assert result.annotations("warning")
    assert len(fake.calls("POST")) == 1


def test_a_bad_marker_key_is_a_usage_error(runner: Runner, fake: FakeGitHub) -> None:
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report), "--marker", "a-->b")
    assert result.code == 2
    assert fake.requests == []


def test_summary_is_appended_without_a_token(runner: Runner, fake: FakeGitHub) -> None:
    runner.token(None)
    runner.summary.write_text("## earlier step\n")
    report = runner.tmp / "report.md"
    report.write_text("### ✅ every eval passed its checks\n")

    result = runner.run("summary", str(report))

    assert result.code == 0
    assert runner.summary.read_text() == (
        "## earlier step\n\n### ✅ every eval passed its checks\n"
    )
    assert fake.requests == []


def test_summary_stays_under_githubs_limit(runner: Runner) -> None:
    report = runner.tmp / "report.md"
    report.write_text("x" * (2 * SUMMARY_LIMIT))
    assert runner.run("summary", str(report)).code == 0
    assert runner.summary.stat().st_size <= SUMMARY_LIMIT


def _report(tmp_path: Path, verdict: str, cases: list[CaseRecord]) -> Path:
    run_dir = make_run(tmp_path / "runs", "20260102-000000-cand01", cases)
    summary = summarize(read_run_info(run_dir), cases)
    path = tmp_path / "report.json"
    write_json_atomic(path, EvalReport(verdict=verdict, summary=summary))  # type: ignore[arg-type]
    return path


def test_outputs_use_the_multiline_safe_syntax(runner: Runner) -> None:
    cases = [case("a"), case("b"), case("c", "failed")]
    cases += [case(f"x{i}", eval_name="test_other") for i in range(4)]
    report_json = _report(runner.tmp, "fail", cases)
    md = runner.tmp / "report.md"
    md.write_text("report")

    result = runner.run("outputs", str(report_json), "--md", str(md))

    assert result.code == 0
    assert result.outputs == {
        "verdict": "fail",
        "pass-rate": "0.8571",  # 6 of 7 graded cases, pooled over the evals
        "report-json": str(report_json.resolve()),
        "report-md": str(md.resolve()),
    }
    openers = [line for line in result.raw_outputs.splitlines() if "<<" in line]
    assert len(openers) == 4
    assert all("=" not in line for line in openers)
    assert len({line.split("<<")[1] for line in openers}) == 4  # a fresh delimiter each


def test_outputs_without_a_report(runner: Runner) -> None:
    result = runner.run("outputs", "missing.json")
    assert result.code == 0
    assert result.outputs == {
        "verdict": "none",
        "pass-rate": "",
        "report-json": "",
        "report-md": "",
    }


def test_an_unreadable_report_is_an_error_not_a_pass(runner: Runner) -> None:
    cases = [case("a"), case("b")]
    report_json = _report(runner.tmp, "pass", cases)
    report_json.write_text(report_json.read_text()[:50])  # truncated
    result = runner.run("outputs", str(report_json))
    assert result.code == 1
    assert result.outputs["verdict"] == "error"
    assert "::error::The report " in result.out
    assert "the verdict is unknown, so this check fails" in result.out


def test_replay_note_lists_what_was_not_run(runner: Runner) -> None:
    cases = [case("ok"), case("broken", "error", kind="api_error")]
    cases += [case(f"c{i:02}", "error", kind="not_recorded") for i in range(12)]
    cases.append(case("c00", "error", kind="not_recorded", eval_name="test_other"))
    run_dir = make_run(runner.tmp / "runs", "20260103-000000-fork01", cases)
    md = runner.tmp / "report.md"
    md.write_text("### report\n")

    result = runner.run("replay-note", str(run_dir), "--md", str(md))

    assert result.code == 0
    text = md.read_text()
    assert text.startswith("### report\n\n" + REPLAY_HEADING)
    assert (
        "13 cases need a live model call and were not run: this run had no API key (a fork's "
        "pull request, or no `openai-api-key` input), so it replayed recorded responses only. "
        "They are not counted as failures."
    ) in text
    listed = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(listed) == 11
    assert listed[-1] == "- … and 3 more"
    assert listed[0] == "- test\\_other: case c00"
    assert "broken" not in text

    runner.run("replay-note", str(run_dir), "--md", str(md))  # a second call adds nothing
    assert md.read_text() == text


def test_replay_note_is_silent_when_everything_ran(runner: Runner) -> None:
    run_dir = make_run(runner.tmp / "runs", "20260103-000000-full01", [case("a")])
    md = runner.tmp / "report.md"
    md.write_text("report\n")
    assert runner.run("replay-note", str(run_dir), "--md", str(md)).code == 0
    assert md.read_text() == "report\n"
    missing = runner.run("replay-note", "no-such-run", "--md", str(md))
    assert missing.code == 0
    assert missing.annotations("notice")


def test_the_token_never_appears_even_when_the_server_echoes_it(
    runner: Runner, fake: FakeGitHub
) -> None:
    fake.echo_token_in_errors = True
    secret = "plain-secret-value-0123"  # not a token GitHub knows: 401 quoting it back
    runner.token(secret)
    report = runner.tmp / "report.md"
    report.write_text(f"the report, which somehow contains {secret} and {TOKEN}")
    seen = []
    for args in (
        ("baseline", "--out", "b"),
        ("baseline", "--out", "b", "--require"),
        ("comment", str(report)),
        ("summary", str(report)),
        ("outputs", "missing.json", "--md", str(report)),
    ):
        result = runner.run(*args)
        seen.append(result.out + result.err + result.raw_outputs)
    assert any("Bad credentials" in text for text in seen)  # the echo did happen
    written = "\n".join(seen) + runner.summary.read_text() + runner.output.read_text()
    assert secret not in written
    assert TOKEN not in written
    assert "***" in written
