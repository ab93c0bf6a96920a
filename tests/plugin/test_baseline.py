"""Baselines through pytest: save, compare, gate, report in every format."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.plugin.suites import two_evals_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_save_then_compare_calls_the_regression_and_fails(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    two_evals_suite(project)
    project.run("--eval-save", "main", *mode).assert_outcomes(passed=80)
    two_evals_suite(project, answer="{{ q }}!")  # the new prompt breaks every answer
    result = project.run(
        "--eval-baseline", "main", "--eval-md", "pr.md", "--eval-json", "report.json", *mode
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*- compared with *",
            "eval * model * cases * pass rate * delta [[]95% CI[]] * verdict*",
            "test_suite::test_answer * 40 * 100.0% -> 0.0% * -100.0%*REGRESSED*",
            # 40 cases that agree cannot rule out a 2% drop: not ok, inconclusive
            "test_suite::test_steady * 40 * 100.0% -> 100.0% * +0.0%*INCONCLUSIVE*",
            "test_suite::test_answer [[]gpt-4.1-mini[]]: regressed: dropped 100.0% > "
            "tolerance 2.0%*",
            "test_suite::test_answer: the baseline used a different prompt",
            "  regressed cases: c00, c01, *",
            "FAILED gate regression<=0.02 on test_suite::test_answer [[]gpt-4.1-mini[]]: "
            "regressed*",
            "see the regressed cases: modelopt compare main .modelopt/runs/* --md compare.md",
        ]
    )
    report = json.loads((project.path / "report.json").read_text())
    assert report["schema_version"] == 1
    assert report["verdict"] == "fail"
    verdicts = {e["eval"]: e["verdict"] for e in report["comparison"]["evals"]}
    assert verdicts == {
        "test_suite::test_answer": "regressed",
        "test_suite::test_steady": "inconclusive",
    }
    markdown = (project.path / "pr.md").read_text()
    assert markdown.startswith("### ❌ 1 eval regressed, 1 gate failed")
    assert "| test\\_suite::test\\_answer | gpt\\-4\\.1\\-mini | 40 | 100.0% → 0.0% |" in markdown


def test_baseline_model_in_one_run(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    two_evals_suite(project)
    server.reply("nope", model="cheap-model")
    result = project.run(
        *mode, "--eval-models", "gpt-4.1-mini,cheap-model", "--eval-baseline-model", "gpt-4.1-mini"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["test_suite::test_answer * gpt-4.1-mini -> cheap-model * 40 * 100.0% -> 0.0%*REGRESSED*"]
    )


def test_gates_without_a_baseline(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    two_evals_suite(project)
    result = project.run(
        *mode, "--eval-fail-on", "pass_rate>=0.99@*steady", "--eval-fail-on", "errors==0"
    )
    assert result.ret == 0
    result = project.run(*mode, "--eval-fail-on", "p95_latency<=0s")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED gate p95_latency<=0s on test_suite::test_answer*"])
    bad = project.run(*mode, "--eval-fail-on", "accuracy>=1")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*unknown metric 'accuracy'*"])


def test_gates_in_config(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    two_evals_suite(project)
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]

        [tool.modelopt.gates]
        fail_on = ["cost_per_case<=$0.0000001"]
        """,
    )
    result = project.run(*mode)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED gate cost_per_case<=$0.0000001 on *"])


def test_missing_baseline_is_a_usage_error(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    two_evals_suite(project)
    result = project.run(*mode, "--eval-baseline", "nightly")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--eval-baseline: no run 'nightly'*"])


def test_junit_xml_carries_scores_and_verdicts(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    import xml.etree.ElementTree as ET

    two_evals_suite(project)
    project.run(*mode, "--eval-save", "main")
    two_evals_suite(project, answer="{{ q }}!")
    project.run(*mode, "--eval-baseline", "main", "--junitxml", "junit.xml")
    root = ET.parse(project.path / "junit.xml").getroot()
    globals_ = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert globals_["modelopt:test_suite::test_answer:gpt-4.1-mini:comparison"] == "regressed"
    assert globals_["modelopt:test_suite::test_steady:gpt-4.1-mini:verdict"] == "pass"
    case = next(
        c for c in root.iter("testcase") if c.get("name") == "test_answer[gpt-4.1-mini-c00]"
    )
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["modelopt_status"] == "failed"
    assert props["modelopt_grade_string_check"] == "0.0"


def test_marker_gates_and_strict_thresholds(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(20)])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.9, strict=True)
        def test_strict(completion, case):
            assert completion.text == case["q"] or case["id"] == "c0"

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", fail_on=["errors==0", "score>=1.1"])
        def test_gated(completion):
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret == 1
    # 20 of 20 pass, but the Wilson lower bound of 20/20 is 0.839 < 0.9
    result.stdout.fnmatch_lines(
        [
            "*test_suite::test_strict*100.0%*FAIL (lower bound < 0.9)*",
            "FAILED eval test_suite::test_strict on gpt-4.1-mini: the lower bound of the pass "
            "rate 83.9% is 6.1% below its threshold 90% (20 of 20 cases passed)",
            "FAILED gate score>=1.1 on test_suite::test_gated [[]gpt-4.1-mini[]]: *",
        ]
    )
    assert "on test_suite::test_strict [[]gpt-4.1-mini[]]: score" not in result.stdout.str()
