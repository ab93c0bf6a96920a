"""Where a run finds its project and writes its reports, what its header says, and how a
team keeps evals out of an ordinary test run."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.config import find_project
from pytest_modelopt.plugin.selection import selects_evals
from tests.support.cli import modelopt

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

EVAL_AND_UNIT = """
import pytest

@pytest.mark.eval(threshold=0.5)
@pytest.mark.parametrize("q", ["a", "b"])
def test_echo(llm, q):
    assert llm.chat([{"role": "user", "content": q}]).text == q

def test_unit():
    assert 1 + 1 == 2
"""


# -- the report header --------------------------------------------------------------------


def test_the_header_names_models_record_mode_host_and_sources(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    monkeypatch.setenv("MODELOPT_RECORD", "all")
    secret_url = server.base_url.replace("://", "://user:hunter2hunter2@") + "?api-key=topsecret1"
    project.test(EVAL_AND_UNIT)
    result = project.run(*mode, "--eval-base-url", secret_url)
    text = result.stdout.str()
    host = server.base_url.split("//")[1].split("/")[0]
    assert (
        f"modelopt: models gpt-4.1-mini; record mode all; base URL host {host} "
        "(--eval-base-url); settings from pyproject.toml [tool.modelopt], MODELOPT_RECORD, "
        "--eval-base-url"
    ) in text.splitlines()
    assert "hunter2" not in text
    assert "topsecret1" not in text


def test_no_header_in_a_run_without_evals(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "modelopt:" not in result.stdout.str()


# -- from a subdirectory ----------------------------------------------------------------------


def test_report_paths_from_the_command_line_are_relative_to_the_current_directory(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    """As --junitxml's: run from a subdirectory, the file lands there, not in the rootdir."""
    project.test(EVAL_AND_UNIT, name="tests/test_suite.py")
    sub = project.path / "tests"
    project.pytester.chdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = project.run(
            *mode, "--eval-json", "out.json", "--eval-md", "out.md", "--junitxml", "junit.xml"
        )
    assert result.ret == 0, result.stdout.str()
    assert f"rootdir: {project.path}" in result.stdout.str()
    for name in ("out.json", "out.md", "junit.xml"):
        assert (sub / name).is_file(), name
        assert not (project.path / name).exists(), name
    assert json.loads((sub / "out.json").read_text())["verdict"] == "pass"


def test_report_paths_from_the_config_file_are_relative_to_the_project(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.config(models=["gpt-4.1-mini"], json="reports/run.json")
    project.test(EVAL_AND_UNIT, name="tests/test_suite.py")
    (project.path / "reports").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project.path / "tests")
        result = project.run(*mode)
    assert result.ret == 0, result.stdout.str()
    assert (project.path / "reports" / "run.json").is_file()


def test_modelopt_finds_the_project_from_a_subdirectory(project: Project, mode: list[str]) -> None:
    project.test(EVAL_AND_UNIT, name="tests/evals/test_suite.py")
    project.run(*mode)
    sub = project.path / "tests" / "evals"
    shown = modelopt(sub, "show", "latest")
    assert shown.returncode == 0, shown.stderr
    assert "test_suite::test_echo" in shown.stdout
    report = modelopt(sub, "report", "latest", "--json", "here.json")
    assert report.returncode == 0, report.stderr
    assert (sub / "here.json").is_file()


@pytest.mark.parametrize(
    ("files", "start", "root"),
    [
        ({"pyproject.toml": "[tool.modelopt]\nmodels = ['m']\n"}, "a/b", "."),
        ({"pyproject.toml": "[tool.modelopt]\n", "a/pytest.ini": "[pytest]\n"}, "a/b", "a"),
        ({"a/pyproject.toml": "[project]\nname='x'\n", "pytest.ini": ""}, "a/b", "."),
        ({"tox.ini": "[tox]\n\n[pytest]\naddopts = -q\n"}, "a", "."),
        ({"tox.ini": "[tox]\n", "a/setup.cfg": "[tool:pytest]\n"}, "a/b", "a"),
        ({"setup.py": "", "a/b/c.txt": ""}, "a/b", "."),
        ({"pyproject.toml": "", "a/setup.py": ""}, "a", "."),
        ({"a/b/c.txt": ""}, "a/b", "a/b"),
        ({"pyproject.toml": "[tool.pytest.ini_options]\n", "a/pyproject.toml": ""}, "a", "."),
    ],
)
def test_the_project_is_found_where_pytest_finds_its_rootdir(
    tmp_path: Path, files: dict[str, str], start: str, root: str
) -> None:
    project = tmp_path / "p"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / start).mkdir(parents=True, exist_ok=True)
    found = find_project(project / start)
    assert found == (project / root).resolve()
    # pytest's own answer, from a fresh interpreter started there
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pytest, sys\n"
            "config = pytest.Config.fromdictargs({}, [])\n"
            "sys.stdout.write(str(config.rootpath))",
        ],
        capture_output=True,
        text=True,
        cwd=project / start,
        check=True,
    )
    assert probe.stdout == str(found)


# -- evals on request --------------------------------------------------------------------------


def test_on_request_evals_are_left_out_of_a_plain_run(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.config(models=["gpt-4.1-mini"], run="on-request")
    project.test(EVAL_AND_UNIT)
    result = project.run(*mode)
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 1
    if "-n" not in mode:  # xdist's controller does not count its workers' deselections
        assert outcomes["deselected"] == 2
    assert (
        "modelopt: 2 eval tests deselected: evals run on request (run = on-request, from "
        "pyproject.toml [tool.modelopt]); run them with pytest --eval-run, or pytest -m eval"
    ) in result.stdout.str()
    assert server.requests == []
    assert not (project.path / ".modelopt" / "runs").exists()


@pytest.mark.parametrize(
    ("args", "env", "passed"),
    [
        (["--eval-run"], {}, 3),
        (["--eval-run", "always"], {}, 3),
        ([], {"MODELOPT_RUN": "always"}, 3),
        (["-m", "eval"], {}, 2),
        (["-m", "eval or slow"], {}, 2),
    ],
)
def test_on_request_evals_run_when_asked(
    project: Project,
    server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    mode: list[str],
    args: list[str],
    env: dict[str, str],
    passed: int,
) -> None:
    project.config(models=["gpt-4.1-mini"], run="on-request")
    project.test(EVAL_AND_UNIT)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = project.run(*mode, *args)
    assert result.ret == 0, result.stdout.str()
    assert result.parseoutcomes()["passed"] == passed
    assert len(server.requests) == 2
    assert "deselected: evals run on request" not in result.stdout.str()


def test_not_eval_deselects_the_evals_of_any_project(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    """Every eval test carries the eval marker (a module's pytestmark too)."""
    project.test(EVAL_AND_UNIT)
    project.test(
        """
        import pytest

        pytestmark = pytest.mark.eval(models=["gpt-4.1-mini"])

        def test_module_level(llm):
            assert llm.chat([{"role": "user", "content": "x"}]).text == "x"
        """,
        name="test_module.py",
    )
    result = project.run(*mode, "-m", "not eval")
    assert result.ret == 0, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 1
    assert outcomes.get("deselected", 3) == 3  # not counted under xdist
    assert server.requests == []


@pytest.mark.parametrize(
    ("expression", "asks"),
    [
        ("eval", True),
        ("eval and not slow", True),
        ("slow or eval", True),
        ("(eval)", True),
        ("eval(threshold=0.9)", True),
        ("not eval", False),
        ("not slow", False),
        ("not (slow or eval)", False),
        ("", False),
        ("evaluation", False),
        ("eval and", False),
    ],
)
def test_which_marker_expressions_ask_for_evals(expression: str, asks: bool) -> None:
    assert selects_evals(expression) is asks
