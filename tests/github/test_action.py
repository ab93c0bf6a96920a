"""action.yml end to end: every composite step run as a GitHub runner runs it.

Each `run:` step runs in real bash (`bash --noprofile --norc -eo pipefail`) with a runner's
environment: `GITHUB_EVENT_PATH` holding a real `pull_request` or `push` payload,
`GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` files, `GITHUB_API_URL` pointing at a local fake
of GitHub's REST API, and `RUNNER_TEMP`. Step `if:`s, `env:` and `${{ }}` expressions are
evaluated from action.yml itself. What needs the network is emulated: `setup-python` (this
venv's Python is first on PATH), the install step (this venv already has the plugin),
`actions/cache` (a directory per key) and `upload-artifact` (the zip is registered with the
fake GitHub as an artifact of the run, so a later pull request downloads it as its
baseline through the real API).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.support.fake_github import FakeGitHub, WorkflowRun

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.fake_openai import FakeOpenAI


ROOT = Path(__file__).resolve().parents[2]


ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


REPO = "acme/support-bot"


WORKFLOW = "evals.yml"


TOKEN = "ghs_writeTOKEN0123456789abcdef"


FORK_TOKEN = "ghs_readonlyTOKEN0123456789ab"


VENV_BIN = Path(sys.executable).parent


_TOKEN = re.compile(
    r"\s*(==|!=|&&|\|\||!|\(|\)|'(?:[^']|'')*'|toJSON\([A-Za-z_][\w.\-]*\)"
    r"|[A-Za-z_][\w.\-]*\(\)|[A-Za-z_][\w.\-]*)"
)


def _lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def workflow_commands(log: str) -> list[str]:
    """The lines of a step's log the runner would act on as workflow commands.

    As the runner does: ``::stop-commands::TOKEN`` turns processing off until a line
    ``::TOKEN::``; every other line starting with ``::`` is a command.
    """
    commands: list[str] = []
    stopped: str | None = None
    for line in log.splitlines():
        if stopped is not None:
            if line.strip() == f"::{stopped}::":
                stopped = None
            continue
        if line.startswith("::stop-commands::"):
            stopped = line[len("::stop-commands::") :].strip()
            continue
        if line.startswith("::"):
            commands.append(line)
    return commands


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """GitHub's expression syntax, as far as action.yml uses it (no eval)."""
    tokens = _TOKEN.findall(expression)
    assert "".join(tokens).replace(" ", "") == expression.replace(" ", ""), expression
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary() -> Any:
        token = take()
        if token == "(":
            value = disjunction()
            assert take() == ")"
            return value
        if token == "!":
            return not truthy(primary())
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        if token.startswith("toJSON("):  # as GitHub writes it: two-space indents
            return json.dumps(_lookup(token[len("toJSON(") : -1], context), indent=2)
        if token.endswith("()"):
            return {"always()": True, "success()": context["_ok"], "failure()": not context["_ok"]}[
                token
            ]
        return _lookup(token, context)

    def comparison() -> Any:
        left = primary()
        while peek() in ("==", "!="):
            op, right = take(), primary()
            left = (str(left) == str(right)) if op == "==" else (str(left) != str(right))
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == "&&":
            take()
            right = comparison()
            left = right if truthy(left) else left
        return left

    def disjunction() -> Any:
        left = conjunction()
        while peek() == "||":
            take()
            right = conjunction()
            left = left if truthy(left) else right
        return left

    value = disjunction()
    assert position == len(tokens), expression
    return value


def truthy(value: Any) -> bool:
    return value not in (None, "", False, 0)


def interpolate(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1).strip(), context)), text)


def parse_outputs(text: str) -> dict[str, str]:
    """The GITHUB_OUTPUT file format: name=value lines and name<<DELIMITER blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            outputs[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class Result:
    code: int
    outputs: dict[str, str]
    summary: str
    steps: dict[str, str]  # step name -> success / failure / skipped
    log: str
    run_id: int
    step_logs: dict[str, str] = field(default_factory=dict)


@dataclass
class Runner:
    """One job running the action; state that outlives a job lives on the test's fixtures."""

    github: FakeGitHub
    workspace: Path
    tmp: Path
    caches: dict[str, Path] = field(default_factory=dict)
    runs: int = 0

    def run(
        self,
        event: str,
        inputs: dict[str, str],
        *,
        token: str = TOKEN,
        pr: int = 7,
        fork: bool = False,
        job: str = "evals",
        matrix: dict[str, Any] | None = None,
        run: WorkflowRun | None = None,
    ) -> Result:
        """One job of a workflow run (``run``: another job or matrix leg of an earlier one)."""
        self.runs += 1
        temp = self.tmp / f"job{self.runs}"
        temp.mkdir()
        branch = f"topic-{pr}" if event.startswith("pull_request") else "main"
        if run is None:
            run = self.github.add_run(
                REPO, WORKFLOW, branch, event=event, status="in_progress", conclusion=None
            )
        payload = self._payload(event, pr, fork)
        (temp / "event.json").write_text(json.dumps(payload))
        summary_file = temp / "summary.md"
        summary_file.write_text("")
        env = {
            "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
            "HOME": str(temp),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.github.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(temp / "event.json"),
            "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/{WORKFLOW}@refs/heads/{branch}",
            "GITHUB_RUN_ID": str(run.id),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_STEP_SUMMARY": str(summary_file),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
        }
        defaults = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
        context: dict[str, Any] = {
            "github": {
                "event_name": event,
                "action_path": str(ROOT),
                "token": token,
                "job": job,
                "server_url": "https://github.com",
                "action_repository": "pytest-modelopt/pytest-modelopt",
                "action_ref": "v1",
            },
            "matrix": matrix,
            "runner": {"temp": str(temp), "os": "Linux"},
            "steps": {},
            "_ok": True,
        }
        context["inputs"] = {k: interpolate(str(v), context) for k, v in defaults.items()}
        context["inputs"].update(inputs)
        statuses: dict[str, str] = {}
        log: list[str] = []
        step_logs: dict[str, str] = {}
        for number, step in enumerate(ACTION["runs"]["steps"]):
            name = step.get("name", f"step {number}")
            condition = step.get("if", "success()")
            if not any(f in condition for f in ("always()", "failure()", "success()")):
                condition = f"success() && ({condition})"
            if not truthy(evaluate(condition, context)):
                statuses[name] = "skipped"
                if "id" in step:
                    context["steps"][step["id"]] = {"outputs": {}, "outcome": "skipped"}
                continue
            outputs, ok, text = self._step(step, context, env, temp)
            log.append(f"--- {name}\n{text}")
            step_logs[name] = text
            statuses[name] = "success" if ok else "failure"
            if "id" in step:
                context["steps"][step["id"]] = {"outputs": outputs, "outcome": statuses[name]}
            context["_ok"] = context["_ok"] and ok
        code = 0 if context["_ok"] else 1
        if run.status == "in_progress" or run.conclusion == "success":
            run.status, run.conclusion = "completed", "success" if code == 0 else "failure"
        outputs = {
            key: interpolate(str(spec["value"]), context) for key, spec in ACTION["outputs"].items()
        }
        return Result(
            code, outputs, summary_file.read_text(), statuses, "\n".join(log), run.id, step_logs
        )

    def _payload(self, event: str, pr: int, fork: bool) -> dict[str, Any]:
        repo = {"full_name": REPO, "default_branch": "main", "fork": False}
        if not event.startswith("pull_request"):
            return {"ref": "refs/heads/main", "repository": repo}
        head_repo = {"full_name": "stranger/support-bot", "fork": True} if fork else repo
        return {
            "action": "synchronize",
            "number": pr,
            "pull_request": {
                "number": pr,
                "title": "Make the prompt $(curl evil) `whoami`",
                "head": {"ref": f"topic-{pr}", "repo": head_repo},
                "base": {"ref": "main", "repo": repo},
            },
            "repository": repo,
        }

    def _step(
        self, step: dict[str, Any], context: dict[str, Any], env: dict[str, str], temp: Path
    ) -> tuple[dict[str, str], bool, str]:
        uses = step.get("uses", "")
        with_ = {k: interpolate(str(v), context) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/setup-python@"):
            return {}, True, f"python {with_['python-version']}: this venv's {sys.executable}"
        if "path" in with_:  # as on a runner: relative to GITHUB_WORKSPACE
            with_["path"] = str(self.workspace / with_["path"])
        if uses.startswith("actions/cache/restore@"):
            return self._restore(with_), True, "cache restore"
        if uses.startswith("actions/cache/save@"):
            saved = self.tmp / f"cache-{len(self.caches)}"
            self.caches[with_["key"]] = self.copy_limited(Path(with_["path"]), saved)
            return {}, True, f"cache saved: {with_['key']}"
        if uses.startswith("actions/upload-artifact@"):
            return self._upload(with_, int(env["GITHUB_RUN_ID"]))
        assert not uses, f"the harness does not know {uses}"
        if step.get("id") == "install":  # the venv running these tests has the plugin
            install = context["inputs"].get("install", "")
            if not install:
                return {}, True, "install: already installed"
            done = subprocess.run(  # the project's own install command, as the step runs it
                ["bash", "-c", install],
                cwd=self.workspace / context["inputs"]["working-directory"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            return {}, done.returncode == 0, done.stdout
        output_file = temp / f"output-{step.get('id', 'x')}-{len(context['steps'])}"
        output_file.write_text("")
        step_env = {**env, "GITHUB_OUTPUT": str(output_file)}
        step_env.update(
            {k: interpolate(str(v), context) for k, v in (step.get("env") or {}).items()}
        )
        cwd = self.workspace / interpolate(step.get("working-directory", "."), context)
        assert "${{" not in step["run"], "no expression may be interpolated into a script"
        script = temp / "step.sh"
        script.write_text(step["run"])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=step_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in order, as the runner's log has it
            text=True,
            timeout=300,
            check=False,
        )
        return parse_outputs(output_file.read_text()), done.returncode == 0, done.stdout

    def _restore(self, with_: dict[str, str]) -> dict[str, str]:
        key = with_["key"]
        hit = self.caches.get(key)
        if hit is None:
            prefixes = [k for k in self.caches if k.startswith(with_.get("restore-keys", "\0"))]
            hit = self.caches[prefixes[-1]] if prefixes else None
        if hit is not None:
            self.copy_limited(hit, Path(with_["path"]))
        return {"cache-hit": "true" if key in self.caches else "false"}

    @staticmethod
    def copy_limited(source: Path, target: Path) -> Path:
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        return target

    def _upload(self, with_: dict[str, str], run_id: int) -> tuple[dict[str, str], bool, str]:
        """As upload-artifact v4: a second artifact of the same name in a run is refused."""
        artifacts = self.github.artifacts.values()
        if any((a.run_id, a.name) == (run_id, with_["name"]) for a in artifacts):
            return (
                {},
                False,
                (
                    "Error: Failed to CreateArtifact: Received non-retryable error: Failed "
                    "request: (409) Conflict: an artifact with this name already exists on the "
                    "workflow run"
                ),
            )
        path = Path(with_["path"])
        if not path.exists() and with_.get("if-no-files-found") == "ignore":
            return {}, True, f"no files at {path}: nothing uploaded"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            if path.is_file():  # one file: stored by its name, at the zip's root
                archive.write(path, path.name)
            for file in sorted(path.rglob("*")) if path.is_dir() else []:
                if file.is_file():
                    archive.write(file, file.relative_to(path))
        artifact = self.github.add_artifact(REPO, run_id, with_["name"], buffer.getvalue())
        # upload-artifact v4's outputs (artifact-url since v4.1.0)
        url = f"https://github.com/{REPO}/actions/runs/{run_id}/artifacts/{artifact.id}"
        outputs = {"artifact-id": str(artifact.id), "artifact-url": url}
        return outputs, True, f"uploaded {with_['name']}"


SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="prompts/answer.j2", dataset="data/cases.jsonl", threshold=0.8)
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"], operation="ilike"))
"""


def write_project(workspace: Path, prompt: str = "{{ q }}", rows: int = 30) -> None:
    (workspace / "tests").mkdir(parents=True, exist_ok=True)
    (workspace / "prompts").mkdir(exist_ok=True)
    (workspace / "data").mkdir(exist_ok=True)
    (workspace / "pyproject.toml").write_text('[tool.modelopt]\nmodels = ["gpt-4.1-mini"]\n')
    (workspace / "tests" / "test_evals.py").write_text(SUITE)
    (workspace / "prompts" / "answer.j2").write_text(prompt)
    lines = [json.dumps({"id": f"c{i:02d}", "q": f"question {i}"}) for i in range(rows)]
    (workspace / "data" / "cases.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def runner(github: FakeGitHub, tmp_path: Path, server: FakeOpenAI) -> Runner:
    github.reset()
    github.add_repo(REPO)
    github.add_token(TOKEN)
    github.add_token(FORK_TOKEN, write=False)
    workspace = tmp_path / "workspace"
    write_project(workspace)
    return Runner(github, workspace, tmp_path)


def live(server: FakeOpenAI) -> dict[str, str]:
    return {"openai-base-url": server.base_url, "openai-api-key": "sk-test-SECRET-0123456789abcdef"}


def marked(github: FakeGitHub) -> list[Any]:
    return [c for c in github.comments(REPO, 7) if "<!-- pytest-modelopt:" in c.body]


def assert_no_secret(result: Result, github: FakeGitHub) -> None:
    texts = [result.log, result.summary, *(c.body for c in github.comments(REPO, 7))]
    for secret in ("sk-test-SECRET-0123456789abcdef", TOKEN, FORK_TOKEN):
        assert not any(secret in text for text in texts)


def test_push_saves_the_baseline_and_a_passing_pr_comments_once(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    base = runner.run("push", live(server))
    assert base.code == 0, base.log
    assert base.steps["Pull-request comment"] == "skipped"
    assert [a.name for a in github.artifacts.values()] == [
        "modelopt-viewer-evals",
        "modelopt-baseline-evals",
    ]
    assert r"test\_evals::test\_answer" in base.summary  # Markdown-escaped

    result = runner.run("pull_request", live(server))
    assert result.code == 0, result.log
    assert result.outputs["verdict"] == "pass"
    assert float(result.outputs["pass-rate"]) == 1.0
    assert Path(result.outputs["report-json"]).is_file()
    report = json.loads(Path(result.outputs["report-json"]).read_text())
    assert report["comparison"] is not None  # the push's run, found through the API
    assert (
        report["comparison"]["baseline_run"]
        == json.loads(Path(base.outputs["report-json"]).read_text())["summary"]["run"]["run_id"]
    )
    markdown = Path(result.outputs["report-md"]).read_text().strip()
    assert markdown in result.summary
    (comment,) = marked(github)
    assert comment.body.startswith("<!-- pytest-modelopt:evals -->\n")
    assert markdown[:500] in comment.body
    assert result.outputs["comment-url"].endswith(str(comment.id))
    assert_no_secret(result, github)


def test_a_regressing_pr_fails_the_check_and_says_why(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    assert runner.run("push", live(server)).code == 0
    write_project(runner.workspace, prompt="{{ q }}" + " please")
    server.reply("something else entirely", contains="please")
    result = runner.run("pull_request", live(server))
    assert result.code == 1
    assert result.outputs["verdict"] == "fail"
    assert result.steps["Gate"] == "failure"
    assert result.steps["Pull-request comment"] == "success"  # reported before the gate
    (comment,) = marked(github)
    assert "regress" in comment.body.lower()
    assert "regress" in result.summary.lower()


def test_a_second_push_updates_the_same_comment(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    assert runner.run("push", live(server)).code == 0
    first = runner.run("pull_request", live(server))
    (comment,) = marked(github)
    before = comment.body
    write_project(runner.workspace, rows=32)  # the PR adds two cases
    second = runner.run("pull_request", live(server))
    assert first.code == second.code == 0
    (updated,) = marked(github)
    assert updated.id == comment.id
    assert [action for _, action, _ in updated.history] == ["created", "updated"]
    assert updated.body != before
    assert second.outputs["comment-url"] == first.outputs["comment-url"]


def test_a_fork_pr_without_secrets_replays_and_reports_live_cases_without_failing(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    assert runner.run("push", live(server)).code == 0  # records 30 answers into the cache
    write_project(runner.workspace, rows=33)  # the fork adds 3 cases nobody recorded
    requests_before = len(server.requests)
    result = runner.run("pull_request", {}, token=FORK_TOKEN, fork=True)
    assert result.code == 0, result.log
    assert len(server.requests) == requests_before  # no live call, no key was tried
    assert "need a live model call" in result.summary
    assert "c32" in result.summary
    assert marked(github) == []  # a fork's token cannot comment: a warning, not a failure
    assert re.search(r"::warning( [^:]*)?::The PR comment could not be posted", result.log)
    assert result.outputs["verdict"] == "pass"
    assert_no_secret(result, github)


def test_a_missing_baseline_is_a_notice_not_a_failure(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    result = runner.run("pull_request", live(server))
    assert result.code == 0, result.log
    assert re.search(r"::notice( [^:]*)?::.*baseline", result.log)
    (comment,) = marked(github)
    assert r"test\_evals::test\_answer" in comment.body
    required = runner.run("pull_request", {**live(server), "require-baseline": "true"})
    assert required.code == 1


def test_the_scripts_never_interpolate_expressions() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]


BAD_ACTION = """
name: bad
description: interpolates an input into a script
inputs:
  who:
    description: a name
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "hello ${{ inputs.who }}"
"""


@pytest.mark.skipif(
    shutil.which("zizmor", path=str(VENV_BIN)) is None, reason="zizmor not installed"
)
def test_the_validators_ci_runs_catch_a_bad_action(tmp_path: Path) -> None:
    """scripts/lint-actions' checks fail on what they exist to catch (so a pass means something)."""
    bad = tmp_path / "action.yml"
    bad.write_text(BAD_ACTION)
    zizmor = subprocess.run(
        [str(VENV_BIN / "zizmor"), "--offline", "--no-progress", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert zizmor.returncode != 0
    assert "template-injection" in zizmor.stdout + zizmor.stderr
    bad.write_text("name: no runs\ndescription: missing its runs key\n")
    schema = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert schema.returncode != 0


def test_pull_request_target_is_refused_and_saves_no_cache(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    """pull_request_target hands a fork's code the secrets and the base branch's cache."""
    result = runner.run("pull_request_target", live(server), fork=True)

    assert result.code == 1
    assert result.steps["Refuse pull_request_target"] == "failure"
    (error,) = [c for c in workflow_commands(result.log) if c.startswith("::error")]
    assert "pull_request_target" in error
    assert "workflow_run" in error
    assert (
        "https://github.com/pytest-modelopt/pytest-modelopt/blob/v1/docs/github-action.md"
        "#pull-requests-from-forks" in error
    )
    for step in ("Install pytest-modelopt", "Run the evals", "Pull-request comment"):
        assert result.steps[step] == "skipped", step
    assert result.steps["Save the response cache"] == "skipped"
    assert runner.caches == {}
    assert server.requests == []
    assert github.comments(REPO, 7) == []
    assert "The evals did not run: the action refuses pull_request_target" in result.summary
    assert result.outputs["verdict"] == "none"
    docs = (ROOT / "docs" / "github-action.md").read_text()
    assert "## Pull requests from forks" in docs
    assert "workflow_run:" in docs


def test_file_names_with_spaces_are_in_the_cache_key(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    spaced = runner.workspace / "data" / "extra cases.jsonl"
    spaced.write_text('{"id": "x"}\n')
    first = runner.run("push", live(server))
    spaced.write_text('{"id": "y"}\n')
    second = runner.run("push", live(server))
    assert first.code == second.code == 0, first.log
    keys = list(runner.caches)
    assert len(keys) == 2, keys  # the spaced file's content changed the key
    assert "No such file" not in first.log + second.log
    spaced.rename(runner.workspace / "data" / "extra\ncases.jsonl")  # and a newline
    third = runner.run("push", live(server))
    assert third.code == 0
    assert "No such file" not in third.log
    assert len(runner.caches) == 3


def test_a_malformed_baseline_artifact_is_a_notice_and_the_evals_run(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    base = runner.run("push", live(server))
    assert base.code == 0
    (artifact,) = [a for a in github.artifacts.values() if a.name.startswith("modelopt-baseline")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(artifact.data)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"{torn json\n[]\n" if info.filename.endswith(".jsonl") else data)
    artifact.data = buffer.getvalue()

    result = runner.run("pull_request", live(server))

    assert result.code == 0, result.log
    assert result.steps["Run the evals"] == "success"
    notices = [c for c in workflow_commands(result.log) if "No baseline" in c]
    assert len(notices) == 1
    assert notices[0].startswith("::notice")
    assert "Traceback" not in result.log
    assert result.outputs["verdict"] == "pass"
    assert json.loads(Path(result.outputs["report-json"]).read_text())["comparison"] is None


def test_a_custom_baseline_artifact_name_is_uploaded_and_found(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    named = {**live(server), "baseline-artifact": "support-evals"}
    base = runner.run("push", named)
    assert base.code == 0, base.log
    assert [a.name for a in github.artifacts.values()] == [
        "modelopt-viewer-evals",
        "support-evals-evals",
    ]

    result = runner.run("pull_request", named)

    assert result.code == 0, result.log
    report = json.loads(Path(result.outputs["report-json"]).read_text())
    assert report["comparison"] is not None
    assert "No baseline" not in result.log


def test_matrix_legs_upload_apart_and_each_pr_leg_finds_its_own(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    """Two legs in one workflow run: no 409 Conflict, and leg B compares with leg B."""
    legs = [{"model": "a", "shard": 1}, {"model": "b", "shard": 2}]
    first = runner.run("push", live(server), matrix=legs[0])
    run = github.runs[first.run_id]
    second = runner.run("push", live(server), matrix=legs[1], run=run)
    assert first.code == second.code == 0, second.log
    assert second.steps["Upload the run"] == "success"
    names = [a.name for a in github.artifacts.values() if "viewer" not in a.name]
    assert len(set(names)) == 2
    viewers = [a.name for a in github.artifacts.values() if "viewer" in a.name]
    assert len(set(viewers)) == 2  # each leg's viewer too
    assert all(name.startswith("modelopt-baseline-evals-") for name in names)
    base_ids = {
        json.dumps(leg): json.loads(Path(r.outputs["report-json"]).read_text())["summary"]["run"][
            "run_id"
        ]
        for leg, r in zip(legs, (first, second), strict=False)
    }

    result = runner.run("pull_request", live(server), matrix=legs[1])

    assert result.code == 0, result.log
    report = json.loads(Path(result.outputs["report-json"]).read_text())
    assert report["comparison"]["baseline_run"] == base_ids[json.dumps(legs[1])]
    assert "modelopt-baseline-evals-" in result.log  # the leg's name, printed by Prepare
    doc = (ROOT / "docs" / "github-action.md").read_text()
    assert "modelopt-baseline-<job id>-<hash>" in doc


def test_the_same_name_twice_in_a_run_is_refused_by_the_harness(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    """The harness refuses what upload-artifact v4 refuses, so the test above means something."""
    first = runner.run("push", live(server))
    again = runner.run("push", live(server), run=github.runs[first.run_id])
    assert again.steps["Upload the run"] == "failure"
    assert again.code == 1


def test_an_install_failure_says_the_evals_did_not_run_and_nothing_else(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    result = runner.run("pull_request", {**live(server), "install": "echo broken; exit 3"})

    assert result.code == 1
    assert result.steps["Install pytest-modelopt"] == "failure"
    assert result.steps["Run the evals"] == "skipped"
    assert (
        "The evals did not run: installing pytest-modelopt or the project (the `install` input) "
        "failed." in result.summary
    )
    assert result.outputs["verdict"] == "none"
    commands = workflow_commands(result.log)
    assert commands == [], commands  # no "No report to show", no "No report at"
    assert "report" not in result.summary.lower()
    assert result.steps["Save the response cache"] == "skipped"
    assert runner.caches == {}
    assert github.comments(REPO, 7) == []


def test_require_baseline_without_one_says_the_evals_did_not_run(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    result = runner.run("pull_request", {**live(server), "require-baseline": "true"})

    assert result.code == 1
    assert result.steps["Run the evals"] == "skipped"
    (error,) = [c for c in workflow_commands(result.log) if c.startswith("::error")]
    assert "the evals did not run" in error
    assert "evals ran" not in result.log.lower()
    assert "run all the same" not in result.log.lower()
    assert (
        "The evals did not run: no baseline was found and `require-baseline` is true."
        in result.summary
    )
    assert server.requests == []


INJECTING_SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="prompts/answer.j2", dataset="data/cases.jsonl", threshold=0.0)
def test_answer(completion, case, grade):
    print(completion)  # a suite that logs the model's replies (run with -s)
    grade(completion, graders.string_check(reference=case["q"], operation="ilike"))
"""


def test_model_output_cannot_issue_workflow_commands(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    (runner.workspace / "tests" / "test_evals.py").write_text(INJECTING_SUITE)
    hostile = (
        "::add-mask::question\n"
        "::warning title=pwned::INJECTED-WARNING\n"
        "::stop-commands::guessed\n"
        "::error::INJECTED-ERROR\n"
        "::guessed::\n"
        "::set-output name=verdict::pass\n"
    )
    server.reply(hostile)

    result = runner.run("pull_request", {**live(server), "tests": "tests -s"})

    assert "INJECTED-WARNING" in result.log  # pytest did print the reply
    commands = workflow_commands(result.log)
    assert not [c for c in commands if "INJECTED" in c or "add-mask" in c], commands
    assert not [c for c in commands if "set-output" in c or "guessed" in c], commands
    evals = result.step_logs["Run the evals"]
    stops = [line for line in evals.splitlines() if line.startswith("::stop-commands::")]
    assert len(stops) >= 1
    token = stops[0].removeprefix("::stop-commands::")
    assert len(token) >= 32
    assert token not in hostile
    assert f"::{token}::" in evals.splitlines()
    assert result.outputs["verdict"] != ""


def test_the_run_viewer_is_an_artifact_linked_from_the_comment_and_summary(
    runner: Runner, server: FakeOpenAI, github: FakeGitHub
) -> None:
    assert runner.run("push", live(server)).code == 0
    result = runner.run("pull_request", live(server))
    assert result.code == 0, result.log
    assert result.steps["Upload the run viewer"] == "success"
    assert result.steps["Link the run viewer"] == "success"
    (viewer,) = [
        a
        for a in github.artifacts.values()
        if a.name == "modelopt-viewer-evals" and a.run_id == result.run_id
    ]
    url = f"https://github.com/{REPO}/actions/runs/{result.run_id}/artifacts/{viewer.id}"
    assert result.outputs["viewer-url"] == url
    with zipfile.ZipFile(io.BytesIO(viewer.data)) as archive:
        assert archive.namelist() == ["report.html"]
        page = archive.read("report.html").decode()
    assert 'id="viewer-data"' in page  # the viewer, with the comparison (a baseline was found)
    assert 'id="summary-section"' in page
    link = f"[Open every case in the run viewer]({url})"
    assert link in result.summary
    (comment,) = marked(github)
    assert link in comment.body
    # the link sits under the headline, so a comment cut to GitHub's limit keeps it
    assert comment.body.index(link) < 300
    # the baseline artifact (the run directory) does not carry the page
    base = next(a for a in github.artifacts.values() if a.name == "modelopt-baseline-evals")
    with zipfile.ZipFile(io.BytesIO(base.data)) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".html")]
