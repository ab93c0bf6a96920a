"""Errors are not passes: an eval whose cases error past a bound fails the run, and the
Action's pass rate counts them; cases that could not run for want of a key or a recording
(a fork's replay-only run) stay reported, not failed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pytest_modelopt.github.runner import report_outputs

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_ok(completion, case):
    assert completion.text == case["q"]

@pytest.mark.eval(prompt="broken.j2", dataset="d.jsonl", threshold=0.0, name="broken")
def test_broken(completion, case):
    assert completion.text == case["q"]
"""


def _setup(project: Project) -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(5)])
    project.file("p.j2", "{{ q }}")
    project.file("broken.j2", "BROKEN {{ q }}")
    project.test(SUITE)


def test_an_eval_that_errored_fails_the_run_and_lowers_the_pass_rate(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    _setup(project)
    server.fault("500", times=None, contains="BROKEN")
    result = project.run(*mode, "--eval-max-retries", "0", "--eval-json", "r.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED gate error_rate<=0.1 on broken [[]gpt-4.1-mini[]]: *"])
    report = json.loads((project.path / "r.json").read_text())
    assert report["verdict"] == "fail"
    outputs = report_outputs(project.path / "r.json")
    assert outputs["pass-rate"] == "0.5000"  # 5 passed of 10 that ran, not 5 of 5


def test_a_configured_error_bound_is_used(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    _setup(project)
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]

        [tool.modelopt.gates]
        max_error_rate = 1.0
        """,
    )
    server.fault("500", times=None, contains="BROKEN")
    result = project.run(*mode, "--eval-max-retries", "0", "--eval-json", "r.json")
    assert json.loads((project.path / "r.json").read_text())["verdict"] == "pass"
    assert "FAILED gate error_rate" not in result.stdout.str()


def test_cases_without_a_recording_in_a_replay_only_run_are_reported_not_failed(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    _setup(project)
    project.run(*mode, "-k", "test_ok")  # records test_ok's answers only
    result = project.run(*mode, "--eval-record", "none", "--eval-json", "r.json")
    report = json.loads((project.path / "r.json").read_text())
    assert report["verdict"] == "pass"
    broken = next(row for row in report["summary"]["evals"] if row["eval"] == "broken")
    assert (broken["errors"], broken["errors_not_run"]) == (5, 5)
    assert report_outputs(project.path / "r.json")["pass-rate"] == "1.0000"
    result.stdout.fnmatch_lines(["*1 x not_recorded: no recorded response*"])
    assert "FAILED gate error_rate" not in result.stdout.str()


JUDGED = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_polite(completion, grade):
    grade(completion, graders.score_model(
        "Rate 1-10: {{ sample.output_text }}", model="judge-1", range=(1, 10), pass_threshold=5))
"""


def test_a_judge_answer_recorded_through_the_plain_text_fallback_replays_with_a_key(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(3)])
    project.file("p.j2", "{{ q }}")
    project.test(JUDGED)
    server.response_formats = set()  # a server without structured outputs: plain text
    server.reply('{"result": 8}', model="judge-1")
    first = project.run(*mode)
    assert first.ret == 0
    server.reset()  # the key is still set and record mode is the default, new
    server.fault("404", times=None, model="judge-1")  # a live judge call would fail now
    second = project.run(*mode)
    assert second.ret == 0
    assert [c["status"] for c in project.cases()] == ["passed"] * 3
    assert [r for r in server.requests if r.body and r.body.get("model") == "judge-1"] == []
