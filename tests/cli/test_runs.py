"""``modelopt show|runs|merge|report|compare`` on runs a pytest session wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.plugin.suites import echo_suite, two_evals_suite
from tests.support.viewer import viewer_document

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_cli_compare_report_and_runs(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    two_evals_suite(project)
    project.run(*mode, "--eval-save", "main")
    two_evals_suite(project, answer="{{ q }}!")
    project.run(*mode)
    done = project.modelopt("compare", "main", "latest", "--md", "c.md", "--json", "c.json")
    assert done.returncode == 1, done.stderr
    assert "REGRESSED" in done.stdout
    assert json.loads((project.path / "c.json").read_text())["verdict"] == "fail"
    assert (project.path / "c.md").read_text().startswith("### ❌")
    same = project.modelopt("compare", "main", "main")
    assert same.returncode == 0, same.stdout + same.stderr
    runs = project.modelopt("runs")
    assert "saved: main" in runs.stdout
    report = project.modelopt("report", "latest", "--md", "r.md")
    assert report.returncode == 0
    assert "run " in report.stdout
    # a run without a comparison gets the run viewer: every case of the run
    html = project.modelopt("report", "latest", "--html", "r.html")
    assert html.returncode == 0, html.stderr
    page = viewer_document(project.path / "r.html")
    assert page["baseline_run"] is None
    assert len(page["cases"]) == 80
    # with a comparison, the viewer pairs each case with the baseline's
    compared = project.modelopt("compare", "main", "latest", "--html", "c.html")
    assert compared.returncode == 1, compared.stderr
    changes = [case.get("change") for case in viewer_document(project.path / "c.html")["cases"]]
    assert changes.count("regressed") == 40
    assert changes.count("same") == 40


def test_modelopt_show_lists_failed_cases(project: Project, mode: list[str]) -> None:
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
    project.run(*mode)
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


def test_merge_shards_into_one_run(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    echo_suite(project, rows=6)
    project.run(*mode).assert_outcomes(passed=6)
    whole = project.summary()["evals"]
    runs = project.path / ".modelopt" / "runs"
    shards = []
    for part in ("c0 or c1 or c2", "c3 or c4 or c5"):
        project.run(*mode, "-k", part)
        shards.append(str(project.run_dir()))
    done = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "merge", *shards, "-o", str(runs / "merged")],
        capture_output=True,
        text=True,
        cwd=project.path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    merged = json.loads((runs / "merged" / "summary.json").read_text())["evals"]
    assert merged == whole


def test_a_latest_pointer_file_names_its_run_wherever_a_run_is_taken(
    project: Project, server: FakeOpenAI
) -> None:
    """CI shards hand over `shard-N/.modelopt/runs/latest`: a pointer file, not a directory."""
    echo_suite(project, rows=4)
    shards = []
    for n, part in enumerate(("c0 or c1", "c2 or c3")):
        project.run("-p", "no:xdist", "-k", part)
        shard = project.path / f"shard-{n}"
        shutil.copytree(project.path / ".modelopt", shard / ".modelopt")
        shards.append(f"shard-{n}/.modelopt/runs/latest")
    done = project.modelopt("merge", *shards, "-o", "merged-run")
    assert done.returncode == 0, done.stderr
    assert len(json.loads((project.path / "merged-run" / "summary.json").read_text())["evals"]) == 1
    for command in (["show"], ["report"], ["distill", "--dry-run", "--student", "gpt-4.1-nano"]):
        shown = project.modelopt(*command, shards[0])
        assert "no run" not in shown.stderr, shown.stderr
        assert "Traceback" not in shown.stderr, shown.stderr
    compared = project.modelopt("compare", shards[0], shards[1])
    assert compared.returncode in (0, 1), compared.stderr
    pytest_run = project.run("-p", "no:xdist", "--eval-baseline", shards[0])
    assert pytest_run.ret in (0, 1)
    (project.path / "shard-1" / ".modelopt" / "runs" / "latest").write_text(
        "20000101-000000-abcdef\n"
    )
    broken = project.modelopt("show", shards[1])
    assert broken.returncode == 2
    assert "points to '20000101-000000-abcdef', which is not a run" in broken.stderr
