"""Where declared requests are sent from (a helper process or a thread) and over which
transport changes nothing in the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.plugin.suites import comparable, mixed_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_the_suite_gives_the_same_records_with_the_sender_and_without(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    mixed_suite(project, server)
    models = ("--eval-models", "gpt-4.1-mini,missing-model", "--eval-record", "off", "-v")
    timing = {"latency_s", "latency_p50", "latency_p95"}  # live calls: only timing differs

    def view() -> Any:
        evals, cases = comparable(project)
        return [
            [{k: v for k, v in row.items() if k not in timing} for row in rows]
            for rows in (evals, cases)
        ]

    threaded = project.run(*mode, "--eval-sender", "thread", *models)
    threaded_view = view()
    helped = project.run(*mode, "--eval-sender", "process", *models)
    if "-n" in mode:  # xdist workers send from their own thread, never a helper process
        assert "sent from a helper process" not in helped.stdout.str()
    else:
        assert "sent from a helper process" in helped.stdout.str()
    assert "sent from a helper process" not in threaded.stdout.str()
    assert view() == threaded_view
    assert threaded.parseoutcomes() == helped.parseoutcomes()
    for transport, sender in (("httpx", "process"), ("httpx", "thread"), ("aiohttp", "thread")):
        other = project.run(*mode, "--eval-sender", sender, "--eval-transport", transport, *models)
        assert view() == threaded_view, (transport, sender)
        assert other.parseoutcomes() == threaded.parseoutcomes()
