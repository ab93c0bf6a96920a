"""pytest-xdist: the same records and summary as a serial run, each request sent once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.plugin.suites import chat_posts, comparable, echo_suite, mixed_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


# Runs both legs itself, to compare them: no `mode`.
def test_xdist_gives_exactly_the_serial_records_and_summary(
    project: Project, server: FakeOpenAI
) -> None:
    mixed_suite(project, server)
    models = ("--eval-models", "gpt-4.1-mini,gpt-4.1,missing-model")
    serial = project.run("-p", "no:xdist", *models)
    serial_view = comparable(project)
    assert serial_view[1]  # failures, errors (missing-model), samples, several models
    assert {c["status"] for c in serial_view[1]} == {"passed", "failed", "error"}
    parallel = project.run("-n", "2", *models)  # successes replay; 404s happen again
    parallel_view = comparable(project)
    differences = [
        (a["nodeid"], key, a[key], b[key])
        for a, b in zip(serial_view[1], parallel_view[1], strict=True)
        for key in a
        if a[key] != b[key]
    ]
    assert differences == []
    assert parallel_view == serial_view
    assert parallel.ret == serial.ret == 1
    assert serial.parseoutcomes() == parallel.parseoutcomes()


def test_a_live_run_sends_each_request_once(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    echo_suite(project, rows=20)
    project.run(*mode).assert_outcomes(passed=20)
    assert chat_posts(server) == 20
    assert len(project.cases()) == 20
