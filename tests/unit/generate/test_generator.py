"""Declared completions generated ahead of the tests: concurrent, bounded, streamed,
rate-limited, and replayed by the tests themselves.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.generate.generator import (
    REPLAY_AHEAD,
    REPLAYS_BEFORE_PAUSE,
    CompletionGenerator,
    Job,
)
from pytest_modelopt.model.cache import ResponseCache
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext, ModelCallError

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI


def chat_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


def jobs_for(n: int) -> list[Job]:
    def build(i: int) -> Any:
        body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
        return lambda: ("chat", body, CallContext("/chat/completions", "m"), body["messages"])

    return [Job(f"job{i}", build(i)) for i in range(n)]


@pytest.fixture(params=["thread", "process"])
def sender(request: pytest.FixtureRequest) -> str:
    """Declared requests go out from the generator's thread, or from a helper process."""
    return str(request.param)


def generator_for(client: ModelClient, sender: str, concurrency: int) -> CompletionGenerator:
    helper = client.sender(processes=2) if sender == "process" else None
    return CompletionGenerator(client, concurrency=concurrency, sender=helper)


def test_generation_is_concurrent_and_bounded(server: FakeOpenAI, sender: str) -> None:
    server.latency = 0.2
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=0)
    generator = generator_for(client, sender, 8)
    generator.start(jobs_for(32))
    texts = [generator.result(f"job{i}").text for i in range(32)]
    generator.stop()
    assert texts == [f"q{i}" for i in range(32)]
    assert server.max_in_flight == 8  # concurrent, and never more than the limit


def test_generation_streams_within_a_window(server: FakeOpenAI) -> None:
    server.latency = 0.05
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=0)
    generator = CompletionGenerator(client, concurrency=2)  # window: 8 ahead of the tests
    generator.start(jobs_for(40))
    assert generator.result("job0").text == "q0"  # the first test need not wait for all
    time.sleep(0.6)
    assert chat_posts(server) == 9  # 1 taken + 8 ahead, then it waits: memory stays flat
    assert generator.result("job30").text == "q30"  # a test far ahead jumps the queue
    generator.stop()


def test_rate_limits_halve_concurrency_and_every_case_completes(
    server: FakeOpenAI, sender: str
) -> None:
    server.latency = 0.05
    server.fault("429", times=12, retry_after=0.05)
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=8)
    generator = generator_for(client, sender, 16)
    generator.start(jobs_for(48))
    texts = [generator.result(f"job{i}").text for i in range(48)]
    generator.stop()
    assert texts == [f"q{i}" for i in range(48)]
    assert generator.limiter.limit < 16 or generator.limiter.peak <= 16
    assert server.max_in_flight <= 16
    assert generator.progress.errors == 0


def test_faults_end_as_the_same_errors_from_a_thread_and_from_the_sender(
    server: FakeOpenAI,
) -> None:
    """500s, timeouts and truncated JSON are retried, then become errors on their own jobs
    only; the sender process classifies them exactly as the in-process client does."""
    outcomes = {}
    for where in ("thread", "process"):
        server.reset()
        server.latency = 0.0
        server.fault("500", times=None, contains="q1")  # q0..q9: "q1" names one job
        server.fault("timeout", times=None, contains="q2", delay=3.0)
        server.fault("malformed", times=None, contains="q3")
        server.fault("429", times=1, contains="q5", retry_after=0.01)  # retried: answered
        client = ModelClient(base_url=server.base_url, timeout=0.5, max_retries=1)
        generator = generator_for(client, where, 4)
        generator.start(jobs_for(10))
        seen: list[str] = []
        for i in range(10):
            try:
                seen.append(generator.result(f"job{i}").text)
            except ModelCallError as exc:
                seen.append(f"{exc.kind} after {exc.attempts}")
        generator.stop()
        outcomes[where] = seen
        assert generator.progress.done == 10
    expected = [f"q{i}" for i in range(10)]
    expected[1], expected[2], expected[3] = "server after 2", "timeout after 2", "malformed after 2"
    assert outcomes["thread"] == expected
    assert outcomes["process"] == expected


def recorded(tmp_path: Path, server: FakeOpenAI, n: int) -> ModelClient:
    """A client whose cache holds the answers of ``jobs_for(n)``, each sent once; the
    server's counts are reset after."""
    cache = ResponseCache(tmp_path)
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=0, cache=cache)
    first = CompletionGenerator(client, concurrency=4)
    first.start(jobs_for(n))
    assert [first.result(f"job{i}").text for i in range(n)] == [f"q{i}" for i in range(n)]
    first.stop()
    assert chat_posts(server) == n
    server.reset()
    return client


def test_tests_replay_their_own_answers_and_hand_misses_back(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """Once the producer has replayed a run of answers it pauses and each test replays
    its own; a test that finds no recording hands its request back to be sent."""
    server.latency = 0.05
    client = recorded(tmp_path, server, 80)
    generator = CompletionGenerator(client, concurrency=4)
    generator.start(jobs_for(120))  # 40 more at the end: never recorded
    threads: set[str] = set()
    original = client.replay

    def replay(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    client.replay = replay  # type: ignore[method-assign]
    texts = [generator.result(f"job{i}").text for i in range(120)]
    generator.stop()
    assert texts == [f"q{i}" for i in range(120)]
    assert chat_posts(server) == 40  # the misses, sent once each
    assert threading.current_thread().name in threads  # the tests replayed some themselves
    assert generator.progress.replayed == 80
    assert generator.progress.sent == 40
    assert generator.progress.done == 120
    assert generator.progress.errors == 0


def test_with_recordings_the_tests_replay_first_and_a_miss_starts_the_producer(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """``replay_first``: no producer thread while every answer is recorded; the first
    test that finds none starts it, and the rest of the misses go out concurrently."""
    client = recorded(tmp_path, server, 50)
    warm = CompletionGenerator(client, concurrency=4)
    warm.start(jobs_for(50), replay_first=True)
    assert [warm.result(f"job{i}").text for i in range(50)] == [f"q{i}" for i in range(50)]
    assert warm.schedule.thread is None  # nothing to send: no thread, no event loop
    warm.stop()
    assert warm.progress.replayed == 50
    assert warm.progress.finished is not None
    assert chat_posts(server) == 0
    server.latency = 0.05
    partly = CompletionGenerator(client, concurrency=8)
    partly.start(jobs_for(90), replay_first=True)  # 40 new ones at the end
    texts = [partly.result(f"job{i}").text for i in range(90)]
    partly.stop()
    assert texts == [f"q{i}" for i in range(90)]
    assert partly.schedule.thread is not None
    assert chat_posts(server) == 40
    assert server.max_in_flight > 1  # the misses were sent ahead, concurrently
    assert (partly.progress.replayed, partly.progress.sent) == (50, 40)


def test_a_prompt_that_fails_while_the_tests_replay_is_its_case_error_and_never_hangs(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """A job whose request does not build (its prompt fails), met while the tests replay
    ahead, errors its own case; the cases after it still get their answers."""
    client = recorded(tmp_path, server, 20)

    def broken() -> Any:
        raise ValueError("template error")

    jobs = jobs_for(20)
    jobs[5] = Job("job5", broken)
    generator = CompletionGenerator(client, concurrency=4)
    generator.start(jobs, replay_first=True)
    outcomes: list[str] = []

    def take_all() -> None:
        for i in range(20):
            try:
                outcomes.append(generator.result(f"job{i}").text)
            except ValueError as exc:
                outcomes.append(str(exc))

    taker = threading.Thread(target=take_all, daemon=True)
    taker.start()
    taker.join(timeout=30)
    generator.stop()
    assert not taker.is_alive(), "a test waited forever for its answer"
    assert outcomes == [f"q{i}" if i != 5 else "template error" for i in range(20)]
    assert chat_posts(server) == 0
    assert generator.progress.errors == 1


def test_a_replaying_test_replays_the_next_answers_ahead_within_a_bound(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """A test that replays its own answer replays the next REPLAY_AHEAD ones in one loop;
    they wait on their jobs, no more than that many at once, and each is taken once."""
    client = recorded(tmp_path, server, 300)
    generator = CompletionGenerator(client, concurrency=64)
    jobs = jobs_for(300)
    generator.start(jobs)
    held: list[int] = []
    texts = []
    for i in range(300):
        held.append(sum(job.completion is not None for job in jobs))
        texts.append(generator.result(f"job{i}").text)
    generator.stop()
    assert texts == [f"q{i}" for i in range(300)]
    assert chat_posts(server) == 0
    assert max(held) <= REPLAY_AHEAD + REPLAYS_BEFORE_PAUSE
    assert max(held[REPLAYS_BEFORE_PAUSE + 1 :]) == REPLAY_AHEAD  # replayed ahead, then taken
    assert all(job.completion is None for job in jobs)  # nothing kept after its test
    assert generator.progress.replayed == generator.progress.done == 300
