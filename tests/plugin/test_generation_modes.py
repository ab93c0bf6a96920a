"""Declared completions through pytest, serially and with ``-n 2``: concurrent in every
record mode, each request sent once, replay-only runs offline, and a 429 storm against a
concurrency quota losing no case."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.cache import ResponseCache

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def echo_suite(project: Project, rows: int) -> None:
    """Each test checks that its answer is its own case's (read from whichever worker's)."""
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(rows)])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_echo(completion, case):
            assert completion.text == case["q"]
        """
    )


def chat_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


def statuses(project: Project) -> list[str]:
    return [case["status"] for case in project.cases()]


@pytest.mark.parametrize("record", ["off", "all", "new"])
def test_every_record_mode_sends_each_request_once_and_concurrently(
    project: Project, server: FakeOpenAI, mode: list[str], record: str
) -> None:
    rows = 24
    echo_suite(project, rows)
    if record == "all":  # recordings that "all" must neither read nor send twice over
        project.run("-p", "no:xdist").assert_outcomes(passed=rows)
        server.reset()
    server.latency = 0.05
    result = project.run(*mode, "--eval-record", record, "--eval-concurrency", "8")
    result.assert_outcomes(passed=rows)
    assert chat_posts(server) == rows
    assert server.max_in_flight > 2  # not one at a time per worker
    assert statuses(project) == ["passed"] * rows
    assert project.summary()["evals"][0]["passed"] == rows
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    assert cache.stats().entries == (0 if record == "off" else rows)
    assert not (project.path / ".modelopt" / "inflight").exists()  # nothing kept


def test_a_replay_only_run_is_offline_and_a_miss_is_its_cases_error(
    project: Project, server: FakeOpenAI, mode: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_suite(project, 10)
    project.run("-p", "no:xdist").assert_outcomes(passed=10)
    echo_suite(project, 11)  # c10 was never recorded
    server.reset()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    result = project.run(*mode, "--eval-record", "none")
    result.assert_outcomes(passed=10, errors=1)
    result.stdout.fnmatch_lines(["*test_echo [[]c10[]]: not_recorded*"])
    assert server.requests == []
    assert sorted(statuses(project)) == ["error"] + ["passed"] * 10
    assert not (project.path / ".modelopt" / "inflight").exists()


def test_a_429_storm_against_a_concurrency_quota_loses_no_case(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    """16 at once (per worker) against a quota of 4, one retry allowed: a refusal while
    others get through is the server being busy, and does not use up the retry."""
    rows = 40
    echo_suite(project, rows)
    server.latency = 0.05
    server.capacity = 4
    result = project.run(*mode, "--eval-concurrency", "16", "--eval-max-retries", "1")
    result.assert_outcomes(passed=rows)
    assert server.capacity_rejections > 0  # there was a storm
    assert chat_posts(server) - server.capacity_rejections == rows  # each answered once
    assert statuses(project) == ["passed"] * rows
