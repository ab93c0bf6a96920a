"""Run records: written as cases finish, survive crashes, summarised, shown, hookable."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from datetime import date
from typing import TYPE_CHECKING

import pydantic_core
import pytest

from pytest_modelopt.collect.datasets import Case
from pytest_modelopt.collect.spec import EvalParam, build_spec
from pytest_modelopt.graders import function, string_check
from pytest_modelopt.graders.base import Grade
from pytest_modelopt.model.types import Completion, Usage
from pytest_modelopt.records.case import CaseState
from pytest_modelopt.records.models import CaseRecord, ErrorRecord, GradeRecord, RunInfo
from pytest_modelopt.records.store import RunWriter, read_cases
from pytest_modelopt.verdict.stats import percentile
from pytest_modelopt.verdict.summary import summarize

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project

ECHO_ROWS = [{"id": f"c{i}", "q": f"q{i}"} for i in range(5)]


def echo_eval(project: Project, body: str = "assert completion.text == case['q']") -> None:
    project.dataset("d.jsonl", ECHO_ROWS)
    project.file("p.j2", "{{ q }}")
    project.test(
        f"""
        import os, signal
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_echo(completion, case):
            {body}
        """
    )


def record(case: str, status: str, sample: int = 0, score: float = 1.0) -> CaseRecord:
    return CaseRecord(
        eval="e",
        nodeid=f"t[{case}-{sample}]",
        model="m",
        case_id=case,
        sample=sample,
        status=status,  # type: ignore[arg-type]
        grades=[GradeRecord(name="g", score=score, passed=status == "passed")],
        latency_s=0.1 * (sample + 1),
        calls=1,
        cost=0.01,
    )


def case_states(tmp_path: Path) -> list[CaseState]:
    """Cases ending every way a record can say: passes and failures with and without
    grades, errors, skips, samples, several calls, judges, free and unpriced calls."""
    spec = build_spec(
        {"threshold": 1, "fail_on": ["pass_rate>=0.5"]},
        default_name="e",
        selected_models=["m"],
        test_dir=tmp_path,
        rootdir=tmp_path,
    )
    row = Case(
        {"id": "c1", "q": "ü", "n": 3, "when": date(2026, 1, 2)}, id="c1", source="d.yaml", line=2
    )

    def call(cost: float | None, latency: float = 0.25) -> Completion:
        usage = Usage(prompt_tokens=3, completion_tokens=2, cached_tokens=1)
        return Completion("out", "m", "chat", usage=usage, cost=cost, latency_s=latency, request={})

    states = []
    for status in ("passed", "failed", "error", "skipped", "pending", None):
        state = CaseState(EvalParam(spec, "m", row, sample=1), f"t[{status}]", "c1")
        state.status = status  # type: ignore[assignment]
        states.append(state)
    graded, asserted, errored = states[0], states[1], states[2]
    graded.add_call(call(0.0, 1), [{"role": "user", "content": "ü"}], declared=True)
    graded.add_call(call(0.0), "again")
    graded.add_grade(Grade(name="s", score=1, passed=True, sub_scores={"a": 1}), string_check("x"))
    graded.add_grade(Grade(name="f", score=0.5, passed=False, reason="half"), function(len))
    graded.add_judge_call(call(None))
    graded.completion_metadata = {"modelopt_eval": "e", "n": 1}  # type: ignore[dict-item]
    graded.duration_s = 1
    asserted.add_call(call(None), "q")
    asserted.assert_reason = "wrong"
    errored.error = ErrorRecord(kind="rate_limit", message="429 after 5 attempts")
    states.append(CaseState(EvalParam(spec, "m"), "t[no dataset]", "default"))
    return states


def test_record_fields_are_exactly_the_case_record_dump(tmp_path: Path) -> None:
    """The dict a case is written from is its CaseRecord's dump, field for field and type
    for type, so the line written without building the model is the model's own line."""
    for state in case_states(tmp_path):
        fields = state.record_fields()
        record = CaseRecord.model_validate(fields)
        assert list(fields) == list(CaseRecord.model_fields)
        for grade in fields["grades"]:
            assert list(grade) == list(GradeRecord.model_fields)
        assert pydantic_core.to_json(fields, fallback=str) == record.model_dump_json(
            fallback=str
        ).encode("utf-8")
    graded, asserted, errored, skipped, pending, unfinished, plain = (
        CaseRecord.model_validate(state.record_fields()) for state in case_states(tmp_path)
    )
    assert graded.usage.prompt_tokens == 6
    assert graded.usage.cached_tokens == 2
    assert (graded.calls, graded.latency_s, graded.cost, graded.duration_s) == (2, 1.25, 0.0, 1.0)
    assert (graded.judge_calls, graded.judge_tokens, graded.judge_cost) == (1, 5, None)
    assert [(g.name, g.score, g.sub_scores) for g in graded.grades] == [
        ("s", 1.0, {"a": 1.0}),
        ("f", 0.5, {}),
    ]
    assert graded.grades[0].grader == string_check("x").to_openai()
    assert graded.grades[1].grader is None  # a Python function has no OpenAI JSON
    assert graded.completion_metadata == {"modelopt_eval": "e", "n": "1"}
    assert graded.input == [{"role": "user", "content": "ü"}]
    assert graded.item == {"id": "c1", "q": "ü", "n": 3, "when": date(2026, 1, 2)}
    assert graded.threshold == 1.0
    assert graded.fail_on == ["pass_rate>=0.5"]
    assert [(g.name, g.passed, g.reason) for g in asserted.grades] == [("assert", False, "wrong")]
    assert asserted.cost is None  # one unpriced call: the case's cost is unknown
    assert errored.error == ErrorRecord(kind="rate_limit", message="429 after 5 attempts")
    assert (skipped.grades, pending.grades, unfinished.status) == ([], [], "error")
    assert plain.item is None
    assert plain.sample == 0
    path = tmp_path / "run"
    writer = RunWriter(path, "main")
    for state in case_states(tmp_path):
        writer.append(state.record_fields())
    writer.close()
    lines = (path / "cases" / "main.jsonl").read_bytes().splitlines()
    assert len(lines) == 7
    assert [
        CaseRecord.model_validate_json(line).model_dump_json(fallback=str).encode()
        for line in lines
    ] == lines
    assert json.loads(lines[0])["item"]["when"] == "2026-01-02"  # exotic values as text


def test_summary_uses_the_case_as_unit_with_samples() -> None:
    info = RunInfo(run_id="r", started_at="now", plugin_version="0")
    cases = [
        record("a", "passed", 0),
        record("a", "passed", 1),
        record("a", "failed", 2, score=0.0),
        record("b", "failed", 0, score=0.0),
        record("b", "failed", 1, score=0.0),
        record("b", "failed", 2, score=0.0),
        record("c", "error", 0),
    ]
    (row,) = summarize(info, cases).evals
    assert (row.cases, row.samples, row.graded, row.errors) == (3, 7, 2, 1)
    assert row.pass_rate == pytest.approx((2 / 3 + 0) / 2)
    assert row.mean_score == pytest.approx((2 / 3 + 0) / 2)
    assert row.cost == pytest.approx(0.07)
    assert row.latency_p50 == pytest.approx(0.2)


@pytest.mark.parametrize("values", [[1.0], [3.0, 1.0, 2.0], [0.5, 9.0, 2.5, 2.5, 7.0, 1.0]])
def test_percentile_matches_linear_interpolation(values: list[float]) -> None:
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    if len(values) > 1:
        expected = statistics.quantiles(values, n=20, method="inclusive")[18]
        assert percentile(values, 95) == pytest.approx(expected)
    assert percentile([], 50) is None


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "main")
    writer.append(record("a", "passed"))
    writer.close()
    with (tmp_path / "cases" / "main.jsonl").open("a") as handle:
        handle.write('{"eval": "e", "nodeid": "t[b')
    assert [c.case_id for c in read_cases(tmp_path)] == ["a"]


def test_slim_records_summarise_the_same_and_share_what_is_equal(tmp_path: Path) -> None:
    """What a session's summary holds at once: the same summary as full records, in
    records without prompts and rows, sharing their field-name sets and fingerprints."""
    writer = RunWriter(tmp_path, "main")
    for i in range(20):
        full = record(f"c{i}", "passed" if i % 3 else "failed", score=float(i % 3 > 0))
        full.input = [{"role": "user", "content": f"question {i}"}]
        full.item = {"id": f"c{i}", "q": "x" * 100}
        full.output = f"answer {i}"
        full.fingerprint = {"prompt": "abc", "dataset": "def"}
        writer.append(full)
    writer.close()
    info = RunInfo(run_id="r", started_at="now", plugin_version="0")
    full_cases = list(read_cases(tmp_path))
    slim_cases = list(read_cases(tmp_path, slim=True))
    assert summarize(info, slim_cases) == summarize(info, full_cases)
    assert [c.output for c in slim_cases] == [c.output for c in full_cases]  # diffs show them
    assert all(c.input is None and c.item is None for c in slim_cases)
    assert full_cases[0].input is not None
    assert len({id(c.fingerprint) for c in slim_cases}) == 1
    assert len({id(c.__pydantic_fields_set__) for c in slim_cases}) == 1
    assert len({id(g.__pydantic_fields_set__) for c in slim_cases for g in c.grades}) == 1


def test_run_layout_and_json_summary(project: Project) -> None:
    echo_eval(project)
    result = project.run("--eval-json", "reports/evals.json")
    result.assert_outcomes(passed=5)
    run_dir = project.run_dir()
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "cases",
        "report.json",
        "run.json",
        "summary.json",
    ]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["schema_version"] == 2
    assert info["models"] == ["gpt-4.1-mini"]
    copy = json.loads((project.path / "reports" / "evals.json").read_text())
    assert copy["summary"] == project.summary()
    assert (copy["schema_version"], copy["verdict"], copy["comparison"]) == (1, "pass", None)
    (case, *_) = project.cases()
    assert case["input"] == [{"role": "user", "content": "q0"}]
    assert case["output"] == "q0"
    assert case["usage"]["prompt_tokens"] == 1
    assert case["cost"] is not None
    assert case["latency_s"] > 0
    assert case["nodeid"] == "test_suite.py::test_echo[gpt-4.1-mini-c0]"


def test_a_killed_run_keeps_every_finished_case(project: Project) -> None:
    echo_eval(project, "if case['q'] == 'q3': os.kill(os.getpid(), signal.SIGKILL)")
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.ret == -9
    run_dir = project.run_dir()
    assert not (run_dir / "summary.json").exists()
    assert [c["case_id"] for c in project.cases()] == ["c0", "c1", "c2"]
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "show", str(run_dir), "--failed"],
        capture_output=True,
        text=True,
        cwd=project.path,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "test_suite::test_echo" in shown.stdout


def test_ctrl_c_keeps_finished_cases_and_writes_the_summary(project: Project) -> None:
    # Python's own SIGINT handler set explicitly: a child that inherits an ignored SIGINT
    # (an xdist worker's earlier test can leave it so) would otherwise never see Ctrl-C.
    echo_eval(
        project,
        "if case['q'] == 'q2': "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "os.kill(os.getpid(), signal.SIGINT)",
    )
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert [c["case_id"] for c in project.cases()] == ["c0", "c1"]
    (row,) = project.summary()["evals"]
    assert row["cases"] == 2


def test_case_result_hook_and_summary_extensions(project: Project) -> None:
    project.file(
        "conftest.py",
        """
        seen = []

        def pytest_modelopt_case_result(record):
            seen.append((record.case_id, record.status))

        def pytest_modelopt_summary_columns():
            return [("chars", lambda row: str(row.completion_tokens * 10))]

        def pytest_modelopt_summary_sections(summary):
            return [("team notes", f"{len(seen)} cases seen: {sorted(seen)[0]}")]
        """,
    )
    echo_eval(project)
    result = project.run()
    result.stdout.fnmatch_lines(
        [
            "eval * chars*verdict",
            "test_suite::test_echo * 50 *",
            "*- team notes -*",
            "5 cases seen: ('c0', 'passed')",
        ]
    )


def test_modelopt_show_lists_failed_cases(project: Project) -> None:
    project.dataset("d.jsonl", [{"id": "good", "q": "yes"}, {"id": "bad", "q": "no"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.5)
        def test_yes(completion, grade):
            grade(completion, graders.string_check(reference="yes"))
        """
    )
    project.run()
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "show", "latest", "--failed"],
        capture_output=True,
        text=True,
        cwd=project.path,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("test_suite::test_yes") and "50.0%" in line for line in lines)
    assert "FAILED  test_suite::test_yes [gpt-4.1-mini] case bad" in lines
    assert "        FAIL string_check: 0 not: 'no' equals 'yes'" in lines
    assert "        output: no" in lines
    assert not any("case good" in line for line in lines)
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "show", "nope"],
        capture_output=True,
        text=True,
        cwd=project.path,
        check=False,
    )
    assert missing.returncode == 2
    assert "no run 'nope' (a run directory, a run id, a name saved with --eval-save" in (
        missing.stderr
    )
