"""The response cache inside pytest: record once, replay offline, clear errors on a miss."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from pytest_modelopt.model.cache import ResponseCache
from tests.plugin.suites import chat_posts, echo_suite

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_second_run_replays_with_no_request(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    echo_suite(project, rows=40)  # enough for the helper process (where there are 2 cores)
    cold = project.run(*mode)
    cold.assert_outcomes(passed=40)
    assert chat_posts(server) == 40
    xdist = "-n" in mode
    helped = (os.cpu_count() or 1) > 1 and not xdist  # xdist workers send from their own
    assert ("sent from a helper process" in cold.stdout.str()) == helped
    first = project.summary()["evals"]
    server.reset()
    result = project.run(*mode)
    result.assert_outcomes(passed=40)
    assert chat_posts(server) == 0
    assert project.summary()["evals"] == first  # recorded latencies: the same numbers
    if xdist:  # the workers' progress, summed
        result.stdout.fnmatch_lines(
            ["modelopt: generated 40 declared completions on 2 workers in *(0 sent, *"]
        )
    else:
        result.stdout.fnmatch_lines(
            ["modelopt: generated 40/40 declared completions*0 sent, 40 replayed*"]
        )
    assert "helper process" not in result.stdout.str()  # nothing to send: none started


def test_replay_needs_no_key_and_no_server(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    echo_suite(project)
    project.run(*mode).assert_outcomes(passed=6)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    project.run(*mode, "--eval-record", "none").assert_outcomes(passed=6)


def test_replay_only_miss_is_an_error_naming_case_and_command(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    echo_suite(project, rows=2)
    project.run(*mode).assert_outcomes(passed=2)
    echo_suite(project, rows=3)  # c2 is new: never recorded
    monkeypatch.delenv("OPENAI_API_KEY")
    server.reset()
    result = project.run(*mode, "--eval-record", "none")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_echo [[]c2[]]: not_recorded: no recorded response for this gpt-4.1-mini call "
            "(eval test_suite::test_echo, case c2) and --eval-record none allows no live call: "
            "record it with `pytest --eval-record new`*"
        ]
    )
    assert chat_posts(server) == 0


def test_record_all_calls_again_and_off_writes_nothing(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    echo_suite(project, rows=3)
    project.run(*mode).assert_outcomes(passed=3)
    project.run(*mode, "--eval-record", "all").assert_outcomes(passed=3)
    assert chat_posts(server) == 6
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    assert cache.stats().entries == 3
    cache.clear()
    project.run(*mode, "--eval-record", "off").assert_outcomes(passed=3)
    assert chat_posts(server) == 9
    assert cache.stats().entries == 0


def test_corrupt_entry_is_refetched_not_a_crash(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    echo_suite(project, rows=2)
    project.run(*mode).assert_outcomes(passed=2)
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    broken = next(cache.files())
    broken.write_text('{"schema_version": 1, "endpoint": "/chat/comp')
    server.reset()
    project.run(*mode).assert_outcomes(passed=2)
    assert chat_posts(server) == 1
    assert json.loads(broken.read_text())["response"]["choices"]


def test_key_ignores_the_api_key_and_separates_samples(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    echo_suite(project, rows=2, marker=", samples=3")
    project.run(*mode).assert_outcomes(passed=6)
    assert chat_posts(server) == 6  # sample index is part of the key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key-00000000")
    server.reset()
    project.run(*mode).assert_outcomes(passed=6)
    assert chat_posts(server) == 0


def test_identical_requests_are_sent_once(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset("d.jsonl", [{"id": "a", "q": "same"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        pytestmark = pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")

        def test_one(completion):
            assert completion.text == "same"

        def test_two(completion):
            assert completion.text == "same"
        """
    )
    project.run(*mode, "--eval-record", "off").assert_outcomes(passed=2)
    assert chat_posts(server) == 1
