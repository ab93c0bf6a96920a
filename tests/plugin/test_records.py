"""Run records: written as cases finish, exactly CaseRecords, surviving crashes,
summarised, hookable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from pytest_modelopt.records.models import CaseRecord
from tests.plugin.suites import mixed_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


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


def test_run_layout_and_json_summary(project: Project, mode: list[str]) -> None:
    echo_eval(project)
    result = project.run(*mode, "--eval-json", "reports/evals.json")
    result.assert_outcomes(passed=5)
    run_dir = project.run_dir()
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "cases",
        "report.json",
        "run.json",
        "summary.json",
    ]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["schema_version"] == 4
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


def test_a_killed_run_keeps_every_finished_case(project: Project, mode: list[str]) -> None:
    echo_eval(project, "if case['q'] == 'q3': os.kill(os.getpid(), signal.SIGKILL)")
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", *mode)
    run_dir = project.run_dir()
    if "-n" in mode:
        # The killed process is a worker: xdist replaces it and the run goes on, so every
        # other case finishes, each worker's finished cases are on disk, and the run ends.
        assert result.ret == 1
        result.stdout.fnmatch_lines(
            ["worker '*' crashed while running 'test_suite.py::test_echo[[]gpt-4.1-mini-c3[]]'"]
        )
        assert (run_dir / "summary.json").exists()
        passed = [c["case_id"] for c in project.cases() if c["status"] == "passed"]
        assert passed == ["c0", "c1", "c2", "c4"]
    else:
        assert result.ret == -9
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


def test_ctrl_c_keeps_finished_cases_and_writes_the_summary(
    project: Project, mode: list[str]
) -> None:
    # Python's own SIGINT handler set explicitly: a child that inherits an ignored SIGINT
    # (an xdist worker's earlier test can leave it so) would otherwise never see Ctrl-C.
    echo_eval(
        project,
        "if case['q'] == 'q2': "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "os.kill(os.getpid(), signal.SIGINT)",
    )
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", *mode)
    assert result.ret == 2
    # The case that was running is counted, as an error: it started and never finished.
    if "-n" in mode:
        # The interrupted process is a worker: xdist stops the run; which cases the other
        # worker finished meanwhile depends on the scheduling, so: the finished ones only.
        result.stdout.fnmatch_lines(["*received keyboard-interrupt*"])
        statuses = {c["case_id"]: c["status"] for c in project.cases()}
        assert statuses["c2"] == "error"
        assert set(statuses.values()) <= {"passed", "error"}
        errors = [c for c in project.cases() if c["status"] == "error"]
        assert all(c["error"]["kind"] == "unfinished" for c in errors)
        assert sum(row["cases"] for row in project.summary()["evals"]) == len(statuses)
    else:
        result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
        cases = project.cases()
        assert [(c["case_id"], c["status"]) for c in cases] == [
            ("c0", "passed"),
            ("c1", "passed"),
            ("c2", "error"),
        ]
        assert cases[2]["error"]["kind"] == "unfinished"
        (row,) = project.summary()["evals"]
        assert (row["cases"], row["errors"]) == (3, 1)


def test_case_result_hook_and_summary_extensions(project: Project, mode: list[str]) -> None:
    project.file(
        "conftest.py",
        """
        import pathlib

        seen = []

        def pytest_modelopt_case_result(record):
            seen.append((record.case_id, record.status))
            with open(pathlib.Path(__file__).with_name("seen.log"), "a") as log:
                log.write(f"{record.case_id} {record.status}\\n")

        def pytest_modelopt_summary_columns():
            return [("chars", lambda row: str(row.completion_tokens * 10))]

        def pytest_modelopt_summary_sections(summary):
            return [("team notes", f"{len(seen)} cases seen: {min(seen, default=None)}")]
        """,
    )
    echo_eval(project)
    result = project.run(*mode)
    # Case results are heard in the process that ran the case (see the hookspec): under
    # xdist the workers, while the summary is the controller's.
    xdist = "-n" in mode
    result.stdout.fnmatch_lines(
        [
            "eval * chars*verdict",
            "test_suite::test_echo * 50 *",
            "*- team notes -*",
            "0 cases seen: None" if xdist else "5 cases seen: ('c0', 'passed')",
        ]
    )
    seen = sorted((project.path / "seen.log").read_text().splitlines())
    assert seen == [f"c{i} passed" for i in range(5)]


def test_written_records_are_exactly_case_records(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    """Every line of a run's case files is exactly what a CaseRecord of it dumps (the
    versioned format), for passes, grades, tolerated failures, API errors, exceptions,
    skips and samples."""
    mixed_suite(project, server)
    project.test(
        """
        import pytest

        pytestmark = pytest.mark.eval(dataset="d.jsonl")

        def test_raises(case):
            if case["id"] == "c1":
                raise RuntimeError("boom ünïcode")
            if case["id"] == "c2":
                pytest.skip("not today")
            assert case["q"] != "q3", "q3 is out"
        """,
        name="test_more.py",
    )
    project.run(*mode, "--eval-models", "gpt-4.1-mini,missing-model")
    lines = [
        line
        for file in sorted((project.run_dir() / "cases").glob("*.jsonl"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    statuses = set()
    for line in lines:
        data = json.loads(line)
        assert CaseRecord.model_validate_json(line).model_dump_json(fallback=str) == line
        statuses.add(data["status"])
    assert statuses == {"passed", "failed", "error", "skipped"}
    assert len(lines) == 9 * 2 * (2 + 1) + 9 * 2  # echo x2 samples, strict; test_raises
