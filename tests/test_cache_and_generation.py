"""Fast and offline: ahead-of-time generation, the response cache, xdist, merge, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.config import Price
from pytest_modelopt.generate.generator import (
    REPLAY_AHEAD,
    REPLAYS_BEFORE_PAUSE,
    CompletionGenerator,
    Job,
)
from pytest_modelopt.model.cache import CacheEntry, ResponseCache, cache_key
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext, ModelCallError
from pytest_modelopt.records.models import CaseRecord

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def echo_suite(project: Project, rows: int = 6, marker: str = "") -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(rows)])
    project.file("p.j2", "{{ q }}")
    project.test(
        f"""
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl"{marker})
        def test_echo(completion, case):
            assert completion.text == case["q"]
        """
    )


def chat_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


# -- the cache --------------------------------------------------------------------------


def test_second_run_replays_with_no_request(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=40)  # enough for the helper process (where there are 2 cores)
    cold = project.run("-p", "no:xdist")
    cold.assert_outcomes(passed=40)
    assert chat_posts(server) == 40
    helped = (os.cpu_count() or 1) > 1
    assert ("sent from a helper process" in cold.stdout.str()) == helped
    first = project.summary()["evals"]
    server.reset()
    result = project.run("-p", "no:xdist")
    result.assert_outcomes(passed=40)
    assert chat_posts(server) == 0
    assert project.summary()["evals"] == first  # recorded latencies: the same numbers
    result.stdout.fnmatch_lines(
        ["modelopt: generated 40/40 declared completions*0 sent, 40 replayed*"]
    )
    assert "helper process" not in result.stdout.str()  # nothing to send: none started


def test_replay_needs_no_key_and_no_server(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_suite(project)
    project.run().assert_outcomes(passed=6)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    project.run("--eval-record", "none").assert_outcomes(passed=6)


def test_replay_only_miss_is_an_error_naming_case_and_command(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_suite(project, rows=2)
    project.run().assert_outcomes(passed=2)
    echo_suite(project, rows=3)  # c2 is new: never recorded
    monkeypatch.delenv("OPENAI_API_KEY")
    server.reset()
    result = project.run("--eval-record", "none")
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
    project: Project, server: FakeOpenAI
) -> None:
    echo_suite(project, rows=3)
    project.run().assert_outcomes(passed=3)
    project.run("--eval-record", "all").assert_outcomes(passed=3)
    assert chat_posts(server) == 6
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    assert cache.stats().entries == 3
    cache.clear()
    project.run("--eval-record", "off").assert_outcomes(passed=3)
    assert chat_posts(server) == 9
    assert cache.stats().entries == 0


def test_corrupt_entry_is_refetched_not_a_crash(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=2)
    project.run().assert_outcomes(passed=2)
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    broken = next(cache.files())
    broken.write_text('{"schema_version": 1, "endpoint": "/chat/comp')
    server.reset()
    project.run().assert_outcomes(passed=2)
    assert chat_posts(server) == 1
    assert json.loads(broken.read_text())["response"]["choices"]


def test_key_ignores_the_api_key_and_separates_samples(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_suite(project, rows=2, marker=", samples=3")
    project.run().assert_outcomes(passed=6)
    assert chat_posts(server) == 6  # sample index is part of the key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key-00000000")
    server.reset()
    project.run().assert_outcomes(passed=6)
    assert chat_posts(server) == 0


def test_identical_requests_are_sent_once(project: Project, server: FakeOpenAI) -> None:
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
    project.run("--eval-record", "off").assert_outcomes(passed=2)
    assert chat_posts(server) == 1


def test_cache_cli_stats_prune_clear(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=3)
    project.run()

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_modelopt.cli", "cache", *args],
            capture_output=True,
            text=True,
            cwd=project.path,
            check=True,
        )
        return done.stdout

    assert "3 entries" in cli("stats")
    assert "gpt-4.1-mini: 3" in cli("stats")
    assert cli("prune", "--older-than", "1").startswith("removed 0 entries")
    assert cli("prune", "--older-than", "0").startswith("removed 3 entries")
    project.run()
    assert cli("clear").startswith("removed 3 entries")


def test_cache_entries_are_atomic_and_written_by_many_processes(tmp_path: Path) -> None:
    """Eight processes write and read the same keys at once: no torn entry, no crash."""
    script = f"""
import sys, time
sys.path.insert(0, {str(tmp_path)!r})
from pytest_modelopt.model.cache import CacheEntry, ResponseCache
cache = ResponseCache(__import__("pathlib").Path({str(tmp_path / "c")!r}))
bad = 0
for i in range(300):
    key = f"{{i % 10:064x}}"
    cache.put(key, CacheEntry(endpoint="/chat/completions", sample=0, request={{"i": i % 10}},
                              response={{"x": "y" * 5000}}, latency_s=0.1, created_at=time.time()))
    if cache.get(key) is None:
        bad += 1
print(bad)
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outputs == ["0"] * 8
    assert ResponseCache(tmp_path / "c").stats().entries == 10


# -- the generator ----------------------------------------------------------------------


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


def test_a_killed_sender_is_restarted_and_no_job_is_lost(server: FakeOpenAI) -> None:
    server.latency = 0.3
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=2)
    helper = client.sender()
    generator = CompletionGenerator(client, concurrency=4, sender=helper)
    generator.start(jobs_for(8))
    deadline = time.monotonic() + 20
    while helper._children[0] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # its first requests are in flight
    child = helper._children[0]
    assert child is not None
    child.proc.kill()
    texts = [generator.result(f"job{i}").text for i in range(8)]
    generator.stop()
    assert texts == [f"q{i}" for i in range(8)]
    assert generator.progress.errors == 0


def test_the_suite_gives_the_same_records_with_the_sender_and_without(
    project: Project, server: FakeOpenAI
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

    threaded = project.run("-p", "no:xdist", "--eval-sender", "thread", *models)
    threaded_view = view()
    helped = project.run("-p", "no:xdist", "--eval-sender", "process", *models)
    assert "sent from a helper process" in helped.stdout.str()
    assert "sent from a helper process" not in threaded.stdout.str()
    assert view() == threaded_view
    assert threaded.parseoutcomes() == helped.parseoutcomes()
    for transport, sender in (("httpx", "process"), ("httpx", "thread"), ("aiohttp", "thread")):
        other = project.run(
            "-p", "no:xdist", "--eval-sender", sender, "--eval-transport", transport, *models
        )
        assert view() == threaded_view, (transport, sender)
        assert other.parseoutcomes() == threaded.parseoutcomes()


def test_the_transport_is_the_sdks_aiohttp_client_when_it_can_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openai

    from pytest_modelopt.model.wire import async_http_client

    assert async_http_client("httpx") is None  # the SDK's own default
    assert isinstance(async_http_client("auto"), openai.DefaultAioHttpClient)
    assert isinstance(async_http_client("aiohttp"), openai.DefaultAioHttpClient)

    class Missing:
        def __init__(self) -> None:
            raise RuntimeError("To use the aiohttp client you must have installed aiohttp")

    monkeypatch.setattr(openai, "DefaultAioHttpClient", Missing)
    assert async_http_client("auto") is None
    with pytest.raises(ModelCallError, match=r"pip install 'openai\[aiohttp\]'"):
        async_http_client("aiohttp")


# -- xdist, merge, resume ---------------------------------------------------------------

MIXED = """
import pytest
from pytest_modelopt import graders

pytestmark = pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")

@pytest.mark.eval(threshold=0.5, samples=2)
def test_echo(completion, case, grade):
    grade(completion, graders.string_check(reference=case["want"]))

def test_strict(completion, case):
    assert completion.text == case["want"]
"""


def mixed_suite(project: Project, server: FakeOpenAI) -> None:
    server.known_models = {"gpt-4.1-mini", "gpt-4.1"}
    rows = [{"id": f"c{i}", "q": f"q{i}", "want": f"q{i}" if i % 3 else "x"} for i in range(9)]
    project.dataset("d.jsonl", rows)
    project.file("p.j2", "{{ q }}")
    project.test(MIXED)


def comparable(project: Project) -> tuple[Any, list[dict[str, Any]]]:
    summary = project.summary()
    cases = [
        {k: v for k, v in c.items() if k not in ("finished_at", "duration_s")}
        for c in project.cases()
    ]
    return summary["evals"], cases


def test_written_records_are_exactly_case_records(project: Project, server: FakeOpenAI) -> None:
    """Every line of a run's case files is exactly what a CaseRecord of it dumps (the
    versioned format), for passes, grades, tolerated failures, API errors, exceptions,
    skips and samples."""
    mixed_suite(project, server)
    project.test(
        """
        import pytest

        pytestmark = pytest.mark.eval(dataset="d.jsonl")

        def test_raises(case):
            if case["id"] == "c1":
                raise RuntimeError("boom ünïcode")
            if case["id"] == "c2":
                pytest.skip("not today")
            assert case["q"] != "q3", "q3 is out"
        """,
        name="test_more.py",
    )
    project.run("-p", "no:xdist", "--eval-models", "gpt-4.1-mini,missing-model")
    lines = [
        line
        for file in sorted((project.run_dir() / "cases").glob("*.jsonl"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    statuses = set()
    for line in lines:
        data = json.loads(line)
        assert CaseRecord.model_validate_json(line).model_dump_json(fallback=str) == line
        statuses.add(data["status"])
    assert statuses == {"passed", "failed", "error", "skipped"}
    assert len(lines) == 9 * 2 * (2 + 1) + 9 * 2  # echo x2 samples, strict; test_raises


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


def test_xdist_live_sends_each_request_once(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=20)
    project.run("-n", "2").assert_outcomes(passed=20)
    assert chat_posts(server) == 20
    assert len(project.cases()) == 20


def test_merge_shards_into_one_run(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=6)
    project.run().assert_outcomes(passed=6)
    whole = project.summary()["evals"]
    runs = project.path / ".modelopt" / "runs"
    shards = []
    for part in ("c0 or c1 or c2", "c3 or c4 or c5"):
        project.run("-k", part)
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


def test_resume_runs_only_what_is_missing(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=5)
    project.run("-k", "c0 or c1")
    first = project.run_dir().name
    server.reset()
    result = project.run("--eval-resume", first)
    result.assert_outcomes(passed=3, deselected=2)
    assert chat_posts(server) == 3
    assert sorted(c["case_id"] for c in project.cases()) == ["c0", "c1", "c2", "c3", "c4"]
    (row,) = project.summary()["evals"]
    assert row["cases"] == 5
    bad = project.run("--eval-resume", "no-such-run")
    assert bad.ret == 4


def test_cache_key_is_stable() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    reordered = {"temperature": 0, "messages": body["messages"], "model": "m"}
    assert cache_key("/chat/completions", body, 0) == cache_key("/chat/completions", reordered, 0)
    assert cache_key("/chat/completions", body, 0) != cache_key("/chat/completions", body, 1)
    assert cache_key("/chat/completions", body, 0) != cache_key("/responses", body, 0)
    entry = CacheEntry(endpoint="/x", sample=0, request={}, response={}, latency_s=0, created_at=0)
    assert CacheEntry.model_validate_json(entry.model_dump_json()) == entry


def test_a_replay_touches_its_entry_at_most_once_an_hour(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    entry = CacheEntry(endpoint="/x", sample=0, request={}, response={}, latency_s=0, created_at=0)
    assert not cache.has_entries()  # a run then starts its helper process ahead
    cache.put("ab" * 32, entry)
    assert cache.has_entries()
    cache.put("cd" * 32, entry)
    old = time.time() - 2 * 3600
    os.utime(cache.path("ab" * 32), (old, old))
    recent = time.time() - 60
    os.utime(cache.path("cd" * 32), (recent, recent))
    assert cache.get("ab" * 32) == entry
    assert cache.get("cd" * 32) == entry
    assert cache.path("ab" * 32).stat().st_mtime > time.time() - 60  # kept by prune
    assert cache.path("cd" * 32).stat().st_mtime == pytest.approx(recent)  # not rewritten


def test_a_replay_keeps_the_cost_priced_when_it_was_recorded(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """Replays need no price table (genai-prices costs ~0.5 s to import); config prices
    still apply to them, and an entry recorded before costs were kept is priced now."""
    cache = ResponseCache(tmp_path)
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=0, cache=cache)
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    live = client.call("chat", body)
    assert live.cost is not None
    assert not live.cached
    [path] = cache.files()
    recorded = CacheEntry.model_validate_json(path.read_bytes())
    assert recorded.cost_recorded
    assert recorded.cost_usd == live.cost
    path.write_text(recorded.model_copy(update={"cost_usd": 1.5}).model_dump_json())
    assert client.call("chat", body).cost == 1.5  # as recorded, not priced again
    overridden = ModelClient(
        base_url=server.base_url,
        timeout=10,
        max_retries=0,
        cache=cache,
        prices={"gpt-4.1-mini": Price(input=1_000_000, output=0)},
    )
    assert overridden.call("chat", body).cost == pytest.approx(live.usage.prompt_tokens)
    legacy = recorded.model_dump()
    del legacy["cost_usd"], legacy["cost_recorded"]
    path.write_text(json.dumps(legacy))
    replayed = client.call("chat", body)
    assert replayed.cached
    assert replayed.cost == live.cost
    assert chat_posts(server) == 1


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
    assert warm._thread is None  # nothing to send: no thread, no event loop
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
    assert partly._thread is not None
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


# -- the Batch API ----------------------------------------------------------------------


def batch_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/batches" and r.method == "POST" for r in server.requests)


def test_eval_batch_runs_the_suite_through_one_batch(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=5)
    result = project.run("--eval-batch", "--eval-batch-poll-interval", "0")
    result.assert_outcomes(passed=5)
    assert batch_posts(server) == 1
    assert chat_posts(server) == 0  # every answer came from the batch, through the cache
    result.stdout.fnmatch_lines(
        [
            "modelopt: submitted 5 requests as batch batch_*",
            "modelopt: batch batch_*: 5 responses cached, 0 failed",
        ]
    )


def test_eval_batch_submit_then_collect(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=4)
    submitted = project.run("--eval-batch=submit")
    assert submitted.ret == 0
    submitted.stdout.fnmatch_lines(
        [
            "*submitted 4 requests (batch_*; manifest *); collect them later with: "
            "pytest --eval-batch=collect*"
        ]
    )
    assert not (project.path / ".modelopt" / "runs").exists() or not project.cases()
    assert len(list((project.path / ".modelopt" / "batches").glob("*.json"))) == 1
    collected = project.run("--eval-batch=collect", "--eval-batch-poll-interval", "0")
    collected.assert_outcomes(passed=4)
    assert chat_posts(server) == 0
    assert list((project.path / ".modelopt" / "batches").glob("*.json")) == []


def test_eval_batch_refuses_xdist_and_a_server_without_batches(
    project: Project, server: FakeOpenAI
) -> None:
    echo_suite(project, rows=2)
    result = project.run("--eval-batch", "-n", "2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--eval-batch runs in one process*"])
    server.batches_enabled = False
    result = project.run("-p", "no:xdist", "--eval-batch", "--eval-batch-poll-interval", "0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--eval-batch: this server has no Batch API*"])
