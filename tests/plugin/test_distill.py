"""Distilling from inside pytest: --eval-distill-to with the hooks, and the finetune
fixture.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.plugin.suites import distill_suite, launch_dirs

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


DISTILL_CONFTEST = """
import pytest

def pytest_modelopt_training_example(example, record, method):
    if record.case_id == "c10":
        return False
    example["messages"][-1]["content"] = example["messages"][-1]["content"].upper()

def pytest_modelopt_finetune_job(job):
    print(f"HOOK saw job {job.id} {job.status}")
"""


def test_eval_distill_to_launches_after_passing_gates_with_the_hooks(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.file("conftest.py", DISTILL_CONFTEST)
    result = project.run(
        *mode,
        "-s",
        "--eval-distill-to",
        "student-model",
        "--eval-finetune-backend",
        "export",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*- distill into student-model -*", "*export job export-*"])
    assert "HOOK saw job export-" in result.stdout.str()
    (manifest_path,) = launch_dirs(project)
    rows = [json.loads(x) for x in (manifest_path.parent / "train.jsonl").read_text().splitlines()]
    assert rows
    assert all(r["messages"][-1]["content"].isupper() for r in rows)
    assert "c10" not in json.loads(manifest_path.read_text())["trained_cases"]


def test_eval_distill_to_does_nothing_when_the_gates_fail(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server, threshold=0.95)
    result = project.run(*mode, "--eval-distill-to", "student-model")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*not distilling into student-model: the run's gates failed*"])
    assert launch_dirs(project) == []


FIXTURE_CONFTEST = """
import pytest

@pytest.fixture(scope="session", autouse=True)
def after_all(finetune, request):
    yield
    prepared = finetune.prepare_run(base_model="s")  # the session's own run
    line = f"FIXTURE built {prepared.report.examples} examples in {prepared.launch_dir.name}"
    print(line)
    with open(request.config.rootpath / "fixture.log", "a") as log:  # xdist hides -s output
        log.write(line + "\\n")
"""


def test_the_finetune_fixture_serves_custom_flows(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.file("conftest.py", FIXTURE_CONFTEST)
    result = project.run(*mode, "-s")
    if "-n" in mode:  # a session fixture ends on each worker, whose output xdist drops
        log = (project.path / "fixture.log").read_text().splitlines()
        assert len(log) == 2
        pytest.LineMatcher(log).fnmatch_lines(["FIXTURE built * examples in sft-s-*"] * 2)
    else:
        result.stdout.fnmatch_lines(["*FIXTURE built * examples in sft-s-*"])
