"""``--eval-html`` writes the run viewer for every run, with or without a baseline."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.plugin.suites import two_evals_suite
from tests.support.viewer import viewer_document

if TYPE_CHECKING:
    from tests.conftest import Project


def test_eval_html_without_a_baseline_writes_the_viewer(project: Project, mode: list[str]) -> None:
    two_evals_suite(project)
    result = project.run(*mode, "--eval-html", "out/run.html")
    result.assert_outcomes(passed=80)
    page = project.path / "out" / "run.html"
    assert "no HTML report written" not in result.stdout.str()
    data = viewer_document(page)
    assert data["run_id"] == project.run_dir().name
    assert data["paired"] is False
    recorded = project.cases()
    assert len(data["cases"]) == len(recorded) == 80
    strings, evals = data["strings"], data["evals"]
    # every case as the run recorded it: its input as sent, its output, its grades
    by_id = {(evals[c["eval"]], c["case_id"]): c for c in data["cases"]}
    for case in recorded:
        shown = by_id[(case["eval"], case["case_id"])]
        assert strings[shown["output"]] == case["output"]
        assert [strings[m[1]] for m in shown["input"]] == [m["content"] for m in case["input"]]
        assert [g[0] for g in shown["grades"]] == [g["name"] for g in case["grades"]]
        assert shown["status"] == case["status"]
    html = page.read_text(encoding="utf-8")
    assert 'id="run-summary"' in html
    assert "Content-Security-Policy" in html


def test_eval_html_with_a_baseline_pairs_the_cases(project: Project, mode: list[str]) -> None:
    two_evals_suite(project)
    project.run(*mode, "--eval-save", "main").assert_outcomes(passed=80)
    two_evals_suite(project, answer="{{ q }}!")
    result = project.run(*mode, "--eval-baseline", "main", "--eval-html", "pr.html")
    assert result.ret == 1
    data = viewer_document(project.path / "pr.html")
    assert data["paired"] is True
    evals = data["evals"]
    changes = {(evals[c["eval"]], c["change"]) for c in data["cases"]}
    assert changes == {
        ("test_suite::test_answer", "regressed"),
        ("test_suite::test_steady", "same"),
    }
    answer = next(c for c in data["cases"] if evals[c["eval"]] == "test_suite::test_answer")
    assert data["strings"][answer["base"]["output"]] + "!" == data["strings"][answer["output"]]
    json.dumps(data)  # plain JSON all the way down
