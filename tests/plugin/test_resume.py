"""--eval-resume: a run is completed with only the cases it is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.plugin.suites import chat_posts, echo_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_resume_runs_only_what_is_missing(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    echo_suite(project, rows=5)
    project.run(*mode, "-k", "c0 or c1")
    first = project.run_dir().name
    server.reset()
    result = project.run(*mode, "--eval-resume", first)
    # xdist deselects on the workers: the controller does not count them
    result.assert_outcomes(passed=3, deselected=0 if "-n" in mode else 2)
    assert chat_posts(server) == 3
    assert sorted(c["case_id"] for c in project.cases()) == ["c0", "c1", "c2", "c3", "c4"]
    (row,) = project.summary()["evals"]
    assert row["cases"] == 5
    bad = project.run(*mode, "--eval-resume", "no-such-run")
    assert bad.ret == 4
