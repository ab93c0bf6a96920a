"""Fail closed: anything that breaks while the verdict is decided or a report is written fails
the run with exit status 3 and one line that says what broke, and what can still be written
is written. A green gate must never mean "the gate crashed".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="answer.j2", dataset="d.jsonl", threshold=1.0)
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"]))
"""
INTERNAL_ERROR = 3


def suite(project: Project, answer: str = "{{ q }}") -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(6)])
    project.file("answer.j2", answer)
    project.test(SUITE)


def test_a_truncated_baseline_is_refused_before_any_call(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    suite(project)
    project.run(*mode, "--eval-save", "base")
    run_json = project.path / ".modelopt" / "saved" / "base" / "run.json"
    run_json.write_text(run_json.read_text()[:40])
    server.reset()
    result = project.run(*mode, "--eval-baseline", "base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--eval-baseline: *run.json: not a readable run.json*"])
    assert server.requests == []


def test_a_corrupt_baseline_fails_the_run_instead_of_passing_it(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    suite(project)
    project.run(*mode, "--eval-save", "base")
    cases = next((project.path / ".modelopt" / "saved" / "base" / "cases").glob("*.jsonl"))
    lines = cases.read_text().splitlines()
    cases.write_text("\n".join([lines[0], '{"eval": "corrupt"', *lines[1:]]) + "\n")
    # an eval that scores 0% against a threshold of 1.0, compared with a broken baseline
    suite(project, answer="{{ q }}?")
    result = project.run(*mode, "--eval-baseline", "base", "--eval-json", "r.json")
    assert result.ret == INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [
            "modelopt: could not decide the verdict: the baseline *base cannot be read (*"
            "jsonl: case 2: not a case record*",
            "modelopt: so this run fails (exit status 3), whatever the table says*",
        ]
    )
    summary = project.summary()  # what could be written was written
    assert summary["evals"][0]["verdict"] == "fail"
    assert not (project.path / "r.json").exists()  # no verdict, so no verdict document


def test_a_report_that_cannot_be_written_fails_the_run_and_the_others_are_written(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    suite(project)
    (project.path / "blocked").write_text("a file where a folder should be")
    result = project.run(*mode, "--eval-md", "blocked/report.md", "--eval-json", "out/report.json")
    assert result.ret == INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["modelopt: could not write the Markdown report to */blocked/report.md: *"]
    )
    report = json.loads((project.path / "out" / "report.json").read_text())
    assert report["verdict"] == "pass"


def test_an_exception_while_summarising_fails_the_run(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    suite(project)
    project.file(
        "conftest.py",
        """
        import pytest_modelopt.run

        _original = pytest_modelopt.run.summarize

        def broken(info, cases):
            raise RuntimeError("the summary broke")

        pytest_modelopt.run.summarize = broken

        def pytest_unconfigure(config):  # pytester runs in this process: put it back
            pytest_modelopt.run.summarize = _original
        """,
    )
    result = project.run(*mode)
    assert result.ret == INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [
            "modelopt: could not summarise the run *: RuntimeError: the summary broke",
            "modelopt: so this run fails (exit status 3), whatever the table says*",
        ]
    )


def test_modelopt_compare_and_report_refuse_an_unreadable_run(
    project: Project, server: FakeOpenAI
) -> None:
    suite(project)
    project.run("--eval-save", "base")
    project.run()
    run_json = project.path / ".modelopt" / "saved" / "base" / "run.json"
    run_json.write_text("{")
    compared = project.modelopt("compare", "base", "latest")
    assert compared.returncode == 2
    assert "run.json: not a readable run" in compared.stderr
    assert "Traceback" not in compared.stderr
    (project.run_dir() / "report.json").write_text('{"verdict": "pa')
    reported = project.modelopt("report", "latest")
    assert reported.returncode == 2
    assert "report.json: not a readable report.json" in reported.stderr
    assert "the run's verdict is unknown" in reported.stderr


def test_modelopt_compare_fails_when_its_report_cannot_be_written(
    project: Project, server: FakeOpenAI
) -> None:
    suite(project)
    project.run("--eval-save", "base")
    project.run()
    (project.path / "blocked").write_text("")
    compared = project.modelopt("compare", "base", "latest", "--md", "blocked/x.md")
    assert compared.returncode == INTERNAL_ERROR
    assert "could not write the Markdown report to blocked/x.md" in compared.stderr
