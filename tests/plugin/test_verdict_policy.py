"""One verdict policy: the pytest session and ``modelopt compare`` judge a pair of saved runs
alike — the same verdict, the same gates, the same exit status — whichever part fails.

Each scenario saves a baseline run, runs the candidate against it with ``--eval-baseline``
(serially and under xdist), then asks ``modelopt compare`` about the same two runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="answer.j2", dataset="d.jsonl", {marker})
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"]))
"""
ROWS = [{"id": f"c{i:02d}", "q": f"q{i}"} for i in range(20)]


def _gates(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return sorted((g["gate"], g["eval"], g["model"], g["passed"]) for g in report["gates"])


SCENARIOS = {
    # every answer wrong on both sides: no regression, the threshold fails
    "threshold": ("threshold=0.9", "{{ q }}?", "{{ q }}?"),
    # half the answers wrong on both sides: no regression, the marker's own gate fails
    "marker-gate": (
        'threshold=0.0, fail_on="score>=0.9"',
        "{% if q[-1] in '02468' %}{{ q }}{% else %}x{% endif %}",
        "{% if q[-1] in '02468' %}{{ q }}{% else %}x{% endif %}",
    ),
    # all right, then all wrong, under a threshold everyone meets: only the regression fails
    "regression": ("threshold=0.0", "{{ q }}", "{{ q }}?"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pytest_and_modelopt_compare_give_the_same_verdict(
    project: Project, server: FakeOpenAI, mode: list[str], scenario: str
) -> None:
    marker, before, after = SCENARIOS[scenario]
    project.dataset("d.jsonl", ROWS)
    project.test(SUITE.replace("{marker}", marker))
    project.file("answer.j2", before)
    project.run(*mode, "--eval-save", "base")
    project.file("answer.j2", after)
    session = project.run(*mode, "--eval-baseline", "base", "--eval-json", "session.json")
    session_report = json.loads((project.path / "session.json").read_text())

    compared = project.modelopt("compare", "base", "latest", "--json", "cli.json")
    cli_report = json.loads((project.path / "cli.json").read_text())

    assert session_report["verdict"] == cli_report["verdict"] == "fail"
    assert _gates(session_report) == _gates(cli_report)
    assert session.ret == compared.returncode == 1, compared.stderr
    failed = [g for g in _gates(cli_report) if not g[3]]
    if scenario == "threshold":
        assert failed == []  # the threshold, not a gate, fails it
        assert cli_report["summary"]["evals"][0]["verdict"] == "fail"
        assert "FAILED eval test_suite::test_answer" in compared.stdout
    elif scenario == "marker-gate":
        assert [g[0] for g in failed] == ["score>=0.9"]
    else:
        assert [g[0] for g in failed] == ["regression<=0.02"]


def test_modelopt_report_judges_a_run_without_a_report_by_the_same_policy(
    project: Project, server: FakeOpenAI
) -> None:
    marker, answer, _ = SCENARIOS["marker-gate"]
    project.dataset("d.jsonl", ROWS)
    project.test(SUITE.replace("{marker}", marker))
    project.file("answer.j2", answer)
    session = project.run("--eval-json", "session.json")
    assert session.ret == 1
    (project.run_dir() / "report.json").unlink()  # judged again from the cases
    reported = project.modelopt("report", "latest", "--json", "cli.json")
    assert reported.returncode == 1, reported.stderr
    session_report = json.loads((project.path / "session.json").read_text())
    cli_report = json.loads((project.path / "cli.json").read_text())
    assert cli_report["verdict"] == session_report["verdict"] == "fail"
    assert _gates(cli_report) == _gates(session_report)
