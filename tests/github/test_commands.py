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

from pytest_modelopt import __version__
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
        plugin_version=__version__,
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
    listings = fake.calls("GET", f"/actions/workflows/{WORKFLOW}/runs")
    assert [r.query for r in listings] == [
        {"branch": "main", "status": "success", "event": event, "per_page": "20"}
        for event in ("push", "schedule", "workflow_dispatch")
    ]
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
    listings = fake.calls("GET", f"/actions/workflows/{WORKFLOW}/runs")
    assert {r.query["branch"] for r in listings} == {"trunk"}
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
    assert "No successful push, schedule or workflow_dispatch run of evals.yml on `main`" in (
        notice
    )
    assert "push to `main`" in notice
    assert "The evals run all the same" in notice
    assert result.outputs == {"found": "false", "baseline-dir": ""}

    required = runner.run("baseline", "--out", "b", "--require")

    assert required.code == 1
    (error,) = required.annotations("error")
    assert "No successful push, schedule or workflow_dispatch run" in error
    # the step that fails stops the evals: the message must not say they ran
    assert "`require-baseline` is true, so the evals did not run." in error
    assert "evals ran" not in error.lower()
    assert "evals run all the same" not in error.lower()
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
    (notice,) = result.annotations("notice")
    assert "holds no run" in notice
    assert result.code == 0
    assert result.outputs["found"] == "false"


def _corrupt_cases(tmp_path: Path) -> bytes:
    runs = tmp_path / "made" / "runs"
    run_dir = make_run(runs, "20260101-000000-bad001", [case("t1"), case("t2")])
    (run_dir / "cases" / "main.jsonl").write_text('{"not": "a case"}\n[1, 2]\n{"eval": 1}\n')
    return zip_bytes(
        {str(p.relative_to(runs.parent)): p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    )


def _bad_run_json(tmp_path: Path) -> bytes:
    return zip_bytes({"runs/20260101-000000-bad002/run.json": b'{"run_id": 3}', "runs/x": b""})


def _truncated_zip(tmp_path: Path) -> bytes:
    return run_artifact(tmp_path)[:200]


def _not_a_zip(tmp_path: Path) -> bytes:
    return b"<html>502 Bad Gateway</html>"


@pytest.mark.parametrize("make", [_corrupt_cases, _bad_run_json, _truncated_zip, _not_a_zip])
def test_a_malformed_baseline_artifact_is_a_notice_not_a_crash(
    runner: Runner, fake: FakeGitHub, tmp_path: Path, make: Any
) -> None:
    seed_baseline(fake, make(tmp_path))

    result = runner.run("baseline", "--out", "b")

    assert result.code == 0, result.out + result.err
    (notice,) = result.annotations("notice")
    assert "modelopt-baseline" in notice
    assert "The evals run without a comparison." in notice
    assert result.annotations("warning") == result.annotations("error") == []
    assert result.outputs == {"found": "false", "baseline-dir": ""}
    assert "Traceback" not in result.out + result.err
    required = runner.run("baseline", "--out", "b2", "--require")
    assert required.code == 1
    (error,) = required.annotations("error")
    assert "the evals did not run" in error


def test_artifact_entries_without_an_id_are_skipped(
    runner: Runner, fake: FakeGitHub, tmp_path: Path
) -> None:
    good = seed_baseline(fake, run_artifact(tmp_path))
    original = fake._artifact_json

    def broken(artifact: Any) -> dict[str, Any]:
        data = original(artifact)
        if artifact.id == good:
            data.pop("id")
        return data

    fake._artifact_json = broken  # type: ignore[method-assign]
    try:
        result = runner.run("baseline", "--out", "b")
    finally:
        fake._artifact_json = original  # type: ignore[method-assign]
    assert result.code == 0, result.out + result.err
    assert result.outputs["found"] == "false"
    (notice,) = result.annotations("notice")
    assert "no unexpired `modelopt-baseline` artifact" in notice


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch"])
def test_a_scheduled_or_manual_run_serves_as_the_baseline(
    runner: Runner, fake: FakeGitHub, tmp_path: Path, event: str
) -> None:
    """The docs' weekly refresh (schedule) and a manual re-run keep the baseline alive."""
    run = fake.add_run(REPO, WORKFLOW, "main", event=event)
    fake.add_artifact(REPO, run.id, DEFAULT_ARTIFACT, run_artifact(tmp_path, "20260105-0-sched1"))
    # newer, and not the base branch's own: a pull request whose head branch is called main
    pr_run = fake.add_run(REPO, WORKFLOW, "main", event="pull_request")
    fake.add_artifact(REPO, pr_run.id, DEFAULT_ARTIFACT, run_artifact(tmp_path, "20260106-0-prrun"))

    result = runner.run("baseline", "--out", "b")

    assert result.code == 0, result.out
    assert result.outputs["baseline-dir"].endswith("20260105-0-sched1")


def test_the_newest_of_push_schedule_and_dispatch_runs_wins(
    runner: Runner, fake: FakeGitHub, tmp_path: Path
) -> None:
    for event, run_id in (("schedule", "20260107-0-older1"), ("push", "20260108-0-newest")):
        run = fake.add_run(REPO, WORKFLOW, "main", event=event)
        fake.add_artifact(REPO, run.id, DEFAULT_ARTIFACT, run_artifact(tmp_path / event, run_id))
    result = runner.run("baseline", "--out", "b")
    assert result.outputs["baseline-dir"].endswith("20260108-0-newest")


def test_the_baseline_is_found_under_its_leg_name_or_the_old_bare_one(
    runner: Runner, fake: FakeGitHub, tmp_path: Path
) -> None:
    run = fake.add_run(REPO, WORKFLOW, "main")
    fake.add_artifact(REPO, run.id, "evals-baseline-evals-1", run_artifact(tmp_path / "a", "r-a"))
    fake.add_artifact(REPO, run.id, "evals-baseline-evals-2", run_artifact(tmp_path / "b", "r-b"))
    found = runner.run("baseline", "--out", "b1", "--artifact", "evals-baseline-evals-2")
    assert found.outputs["baseline-dir"].endswith("r-b")
    older = fake.add_run(REPO, WORKFLOW, "main")  # uploaded by an earlier release: bare name
    fake.add_artifact(REPO, older.id, "evals-baseline", run_artifact(tmp_path / "c", "r-c"))
    bare = runner.run(
        "baseline",
        "--out",
        "b2",
        "--artifact",
        "evals-baseline-evals-3",
        "--fallback",
        "evals-baseline",
    )
    assert bare.outputs["baseline-dir"].endswith("r-c")
    none = runner.run("baseline", "--out", "b3", "--artifact", "evals-baseline-evals-3")
    assert none.outputs["found"] == "false"


def test_names_are_unique_per_job_and_matrix_leg(runner: Runner) -> None:
    def names(*args: str) -> dict[str, str]:
        result = runner.run("names", *args)
        assert result.code == 0
        return result.outputs

    plain = names("--baseline", "my-evals", "--job", "evals", "--matrix", "null")
    assert plain == {
        "baseline-artifact": "my-evals-evals",
        "report-artifact": "modelopt-report-evals",
        "viewer-artifact": "modelopt-viewer-evals",
    }
    leg = ["--baseline", "my-evals", "--job", "evals", "--matrix"]
    one = names(*leg, '{\n  "model": "a"\n}')
    two = names(*leg, '{\n  "model": "b"\n}')
    legs = {plain["baseline-artifact"], one["baseline-artifact"], two["baseline-artifact"]}
    assert len(legs) == 3
    assert one["baseline-artifact"].startswith("my-evals-evals-")
    assert one == names(*leg, '{"model": "a"}')  # the same leg: the same name, however written
    other_job = names("--baseline", "my-evals", "--job", "nightly", "--matrix", "null")
    assert other_job["baseline-artifact"] == "my-evals-nightly"
    subdir = names("--baseline", "my-evals", "--job", "evals", "--working-directory", "svc/a")
    assert subdir["baseline-artifact"] not in (plain["baseline-artifact"],)
    odd = names("--baseline", "a/b", "--job", 'x:"y"')
    assert odd["baseline-artifact"] == "a_b-x__y_"


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
    assert len(fake.calls("GET", "/issues/7/comments")) == 4  # one try and three retries
    assert fake.calls("POST") == []


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client with a 0.5 s timeout and short back-offs, for faults that wait."""
    from pytest_modelopt.github.api import GitHubClient
    from pytest_modelopt.github.runner import RunnerEnv

    def client(self: RunnerEnv, **options: Any) -> GitHubClient:
        return GitHubClient(self.token, self.api_url, timeout=0.5, backoff=0.05)

    monkeypatch.setattr(RunnerEnv, "client", client)


@pytest.mark.usefixtures("quick")
def test_a_post_that_timed_out_but_landed_makes_one_comment(
    runner: Runner, fake: FakeGitHub
) -> None:
    """One slow answer once made four comments: the POST is never blindly repeated."""
    fake.slow("POST", "/issues/7/comments", 2.0)  # created at once, answered after the timeout
    report = runner.tmp / "report.md"
    report.write_text("the report")

    result = runner.run("comment", str(report))

    assert result.code == 0, result.out
    assert result.annotations("warning") == []
    (comment,) = fake.comments(REPO, 7)
    assert comment.body.endswith("the report")
    assert len(fake.calls("POST")) == 1
    assert result.outputs == {
        "comment-url": f"https://github.com/{REPO}/pull/7#issuecomment-{comment.id}"
    }
    listings = [r for r in fake.requests if r.method == "GET" and "/issues/7/comments" in r.path]
    assert len(listings) == 2  # before posting, and after the timeout: looked, found it


@pytest.mark.usefixtures("quick")
def test_a_post_answered_502_that_landed_is_not_repeated(runner: Runner, fake: FakeGitHub) -> None:
    fake.fault("POST", "/issues/7/comments", 502, landed=True)
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    assert result.annotations("warning") == []
    assert len(fake.calls("POST")) == 1
    assert len(fake.comments(REPO, 7)) == 1


@pytest.mark.usefixtures("quick")
def test_a_post_answered_502_that_did_not_land_is_posted_again(
    runner: Runner, fake: FakeGitHub
) -> None:
    fake.fault("POST", "/issues/7/comments", 502)
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    assert result.annotations("warning") == []
    assert len(fake.calls("POST")) == 2  # looked first, found nothing, posted again
    assert len(fake.comments(REPO, 7)) == 1


@pytest.mark.usefixtures("quick")
def test_posts_that_never_answer_give_up_with_a_warning(runner: Runner, fake: FakeGitHub) -> None:
    fake.fault("POST", "/issues/7/comments", 504, times=10)
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "504" in warning
    assert len(fake.calls("POST")) == 3
    assert fake.comments(REPO, 7) == []


def test_a_marker_pasted_by_someone_else_is_left_alone(runner: Runner, fake: FakeGitHub) -> None:
    """Only the token's own comment is the sticky one: a pasted marker is not taken over."""
    pasted = fake.add_comment(REPO, 7, f"{MARKER}\nlook, I can write this too", login="mallory")
    other_bot = fake.add_comment(
        REPO, 7, f"{MARKER}\nanother app's", login="some-app[bot]", user_type="Bot"
    )
    report = runner.tmp / "report.md"
    report.write_text("the report")

    result = runner.run("comment", str(report))

    assert result.code == 0, result.out
    assert fake.comments_by_id[pasted.id].body.endswith("look, I can write this too")
    assert fake.comments_by_id[other_bot.id].body.endswith("another app's")
    assert fake.calls("PATCH") == []
    (ours,) = [c for c in fake.comments(REPO, 7) if c.login == "github-actions[bot]"]
    assert ours.body == f"{MARKER}\nthe report"
    assert len(fake.calls("GET", "/user")) == 1  # the job's token: 403, so github-actions[bot]
    report.write_text("the second report")
    runner.run("comment", str(report))
    (patch,) = fake.calls("PATCH")
    assert patch.path.endswith(f"/issues/comments/{ours.id}")
    assert len(fake.comments(REPO, 7)) == 3


def test_a_personal_token_keeps_its_own_comment(runner: Runner, fake: FakeGitHub) -> None:
    pat = "github_pat_" + "x1" * 20
    fake.add_token(pat, login="release-bot-user", user_type="User")
    bots = fake.add_comment(REPO, 7, f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    mine = fake.add_comment(REPO, 7, f"{MARKER}\nmine", login="release-bot-user")
    runner.token(pat)
    report = runner.tmp / "report.md"
    report.write_text("new")

    result = runner.run("comment", str(report))

    assert result.code == 0, result.out
    (patch,) = fake.calls("PATCH")
    assert patch.path.endswith(f"/issues/comments/{mine.id}")
    assert fake.comments_by_id[mine.id].body == f"{MARKER}\nnew"
    assert fake.comments_by_id[bots.id].body == f"{MARKER}\nold"
    assert pat not in result.out + result.err


@pytest.mark.parametrize("status", [403, 404, 422])
def test_an_update_that_fails_makes_a_new_comment(
    runner: Runner, fake: FakeGitHub, status: int
) -> None:
    old = fake.add_comment(REPO, 7, f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    fake.fault("PATCH", f"/issues/comments/{old.id}", status, message="cannot edit")
    report = runner.tmp / "report.md"
    report.write_text("new")

    result = runner.run("comment", str(report))

    assert result.code == 0, result.out
    assert result.annotations("warning") == []
    new = [c for c in fake.comments(REPO, 7) if c.id != old.id]
    assert [c.body for c in new] == [f"{MARKER}\nnew"]
    assert result.outputs["comment-url"].endswith(f"#issuecomment-{new[0].id}")


def _workflow_run_event(runner: Runner, head_sha: str, pull_requests: list[Any]) -> None:
    runner.event(
        "workflow_run",
        {
            "action": "completed",
            "workflow_run": {
                "id": 4242,
                "event": "pull_request",
                "conclusion": "success",
                "head_sha": head_sha,
                "head_branch": "feature",
                "head_repository": {"full_name": "mallory/evals", "owner": {"login": "mallory"}},
                "pull_requests": pull_requests,
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
        },
    )


def test_the_trusted_workflow_run_comments_on_the_fork_pr_of_that_commit(
    runner: Runner, fake: FakeGitHub
) -> None:
    """The second workflow of the safe pattern: the PR is found from the event's head commit
    (a fork's run lists no pull_requests), never from a number the untrusted run uploaded."""
    fake.add_pull(REPO, 12, "b" * 40, owner="mallory", branch="feature")  # same branch, old head
    fake.add_pull(REPO, 13, "a" * 40, owner="mallory", branch="feature")
    _workflow_run_event(runner, "a" * 40, [])
    report = runner.tmp / "report.md"
    report.write_text("fork report")

    result = runner.run("comment", str(report))

    assert result.code == 0, result.out
    assert fake.comments(REPO, 12) == []
    (comment,) = fake.comments(REPO, 13)
    assert comment.body == f"{MARKER}\nfork report"


def test_a_workflow_run_whose_commit_is_no_open_pr_posts_nothing(
    runner: Runner, fake: FakeGitHub
) -> None:
    fake.add_pull(REPO, 12, "b" * 40, owner="mallory", branch="feature")
    _workflow_run_event(runner, "c" * 40, [{"number": 12, "head": {"sha": "b" * 40}}])
    report = runner.tmp / "report.md"
    report.write_text("report")
    result = runner.run("comment", str(report))
    assert result.code == 0
    (warning,) = result.annotations("warning")
    assert "no open pull request" in warning
    assert fake.calls("POST") == []


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
