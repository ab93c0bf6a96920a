"""pytest-rerunfailures: a rerun replaces its earlier attempt in the run; it is not counted as
an extra sample."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest

ATTEMPTS = {}

@pytest.mark.eval(models=["gpt-4.1-mini"])
@pytest.mark.parametrize("q", ["a", "b", "c"])
def test_flaky(model, q):
    ATTEMPTS[q] = ATTEMPTS.get(q, 0) + 1
    assert q != "b" or ATTEMPTS[q] > 1  # b fails once, then passes
"""


def test_a_rerun_replaces_its_first_attempt(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.test(SUITE)
    result = project.run(*mode, "--reruns", "1", "--eval-json", "r.json")
    result.stdout.fnmatch_lines(["*3 passed, 1 rerun*"])
    report = json.loads((project.path / "r.json").read_text())
    (row,) = report["summary"]["evals"]
    assert (row["cases"], row["samples"], row["passed"], row["failed"]) == (3, 3, 3, 0)
    lines = [
        json.loads(line)
        for path in (project.run_dir() / "cases").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(lines) == 4  # both attempts are kept on disk; the summary reads the latest
