"""Every case is counted: a case that started and never finished — its xdist worker killed
mid-case — is an error on that case, in the eval's errors and its gates, never dropped."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import os
import signal
import pytest

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_answer(completion, case):
    if case["q"] == "q3" and os.environ.get("PYTEST_XDIST_WORKER"):
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-case, as with kill -9
    assert completion.text == case["q"]
"""


def test_a_case_whose_worker_was_killed_is_an_error(project: Project, server: FakeOpenAI) -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(8)])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    result = project.run("-n", "2", "--eval-json", "r.json")
    assert result.ret != 0
    report = json.loads((project.path / "r.json").read_text())
    (row,) = report["summary"]["evals"]
    assert (row["cases"], row["errors"], row["graded"]) == (8, 1, 7)
    assert report["verdict"] == "fail"  # 1 error in 8 samples is past the 10% bound
    (crashed,) = [c for c in project.cases() if c["status"] == "error"]
    assert crashed["case_id"] == "c3"
    assert crashed["error"]["kind"] == "unfinished"
    assert "never finished" in crashed["error"]["message"]
    result.stdout.fnmatch_lines(["*1 x unfinished: the case started on gw* and never finished*"])
