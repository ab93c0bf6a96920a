"""Two xdist workers, played by two generators in one process: each produces the whole
list from its own offset and they share answers through one cache, so each request goes
out once whatever the record mode; and a 429 storm against a concurrency quota loses no
case and settles at the quota."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.collect.prompts import load_prompt
from pytest_modelopt.config import Settings
from pytest_modelopt.generate.generator import CompletionGenerator, Job
from pytest_modelopt.generate.plan import Planner
from pytest_modelopt.model.cache import ResponseCache
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext, ModelCallError

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_modelopt.collect.prompts import Prompt
    from pytest_modelopt.model.cache import RecordMode
    from tests.support.fake_openai import FakeOpenAI


def jobs_for(n: int) -> list[Job]:
    def build(i: int) -> Any:
        body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
        return lambda: ("chat", body, CallContext("/chat/completions", "m"), body["messages"])

    return [Job(f"job{i}", build(i)) for i in range(n)]


def answered(server: FakeOpenAI) -> int:
    """Model requests the server answered (a 429 for its capacity is no answer)."""
    posts = sum(r.path == "/v1/chat/completions" for r in server.requests)
    return posts - server.capacity_rejections


def client_for(server: FakeOpenAI, cache: ResponseCache | None, **kw: Any) -> ModelClient:
    options: dict[str, Any] = {"timeout": 10, "max_retries": 2} | kw
    return ModelClient(base_url=server.base_url, cache=cache, **options)


def workers(
    server: FakeOpenAI, tmp_path: Path, record: RecordMode, n: int, concurrency: int = 4
) -> tuple[list[CompletionGenerator], ResponseCache]:
    """Two workers' generators over the same n jobs, shared as plan.py shares them."""
    generators = []
    recordings = tmp_path / "cache"
    scratch = ResponseCache(tmp_path / "inflight" / "run-1", "new")
    for index in range(2):
        cache = None if record == "off" else ResponseCache(recordings, record)
        client = client_for(server, cache)
        shared = cache if record == "new" else scratch if record in ("all", "off") else None
        generator = CompletionGenerator(
            client, concurrency=concurrency, hold=False, offset=index / 2, shared=shared
        )
        generators.append(generator)
    return generators, scratch


def take_halves(generators: list[CompletionGenerator], n: int) -> dict[str, Any]:
    """Worker 0 runs the even tests, worker 1 the odd ones (xdist decides, not we)."""
    for generator in generators:
        generator.start(jobs_for(n))
    got = {}
    for i in range(n):
        got[f"job{i}"] = generators[i % 2].result(f"job{i}")
    for generator in generators:
        generator.stop()
    return got


@pytest.mark.parametrize("record", ["off", "all", "new"])
def test_each_request_goes_out_once_and_concurrently_whatever_the_record_mode(
    server: FakeOpenAI, tmp_path: Path, record: RecordMode
) -> None:
    server.latency = 0.05
    n = 24
    generators, scratch = workers(server, tmp_path, record, n)
    got = take_halves(generators, n)
    assert {job: c.text for job, c in got.items()} == {f"job{i}": f"q{i}" for i in range(n)}
    assert answered(server) == n  # once each: no worker sent what another had
    assert server.max_in_flight > 2  # concurrent within each worker, not one at a time
    assert sum(g.progress.sent for g in generators) == n
    if record == "all":  # re-recorded, once each, in the response cache
        assert ResponseCache(tmp_path / "cache").stats().entries == n
    if record == "off":
        assert not (tmp_path / "cache").exists()
    # the scratch cache holds this run's answers where the response cache cannot
    assert scratch.stats().entries == (0 if record == "new" else n)


@pytest.mark.parametrize("record", ["off", "all"])
def test_an_answer_from_the_scratch_cache_is_a_live_one(
    server: FakeOpenAI, tmp_path: Path, record: RecordMode
) -> None:
    generators, scratch = workers(server, tmp_path, record, 8)
    got = take_halves(generators, 8)
    assert not any(c.cached for c in got.values())
    assert all(c.response for c in got.values())
    assert scratch.stats().entries == 8


def test_a_replay_only_run_shares_nothing_and_sends_nothing(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    recorder = CompletionGenerator(client_for(server, ResponseCache(tmp_path / "cache")))
    recorder.start(jobs_for(10))
    assert [recorder.result(f"job{i}").text for i in range(10)] == [f"q{i}" for i in range(10)]
    recorder.stop()
    server.reset()
    generators, _ = workers(server, tmp_path, "none", 10)
    got = take_halves(generators, 10)
    assert all(c.cached and c.text == f"q{i}" for i, c in enumerate(got.values()))
    assert server.requests == []
    assert not (tmp_path / "inflight").exists()


def test_a_request_another_worker_failed_is_this_workers_to_send(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    scratch = ResponseCache(tmp_path / "inflight" / "run-1", "new")
    server.fault("500", times=1, contains="q0")
    first = CompletionGenerator(
        client_for(server, None, max_retries=0), concurrency=4, hold=False, shared=scratch
    )
    first.start(jobs_for(6))
    with pytest.raises(ModelCallError):
        first.result("job0")  # its own test sees its own failure
    assert [first.result(f"job{i}").text for i in range(1, 6)] == [f"q{i}" for i in range(1, 6)]
    first.stop()
    second = CompletionGenerator(
        client_for(server, None), concurrency=4, hold=False, offset=0.5, shared=scratch
    )
    second.start(jobs_for(6))
    assert second.result("job0").text == "q0"  # the claim went without an answer: sent
    assert [second.result(f"job{i}").text for i in range(1, 6)] == [f"q{i}" for i in range(1, 6)]
    second.stop()
    assert answered(server) == 7  # 6 answers, and the one failed attempt
    assert second.progress.sent == 1


@pytest.fixture(params=["thread", "process"])
def sender(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("retry_after", [None, 0.05])
def test_a_storm_of_429s_against_a_quota_loses_no_case_and_settles_at_the_quota(
    server: FakeOpenAI, sender: str, retry_after: float | None
) -> None:
    """64 at once against a quota of 8; max_retries=1 would lose cases if each refusal
    counted, and halving on each 429 would end with one request in flight."""
    server.latency = 0.05
    server.capacity = 8
    server.capacity_retry_after = retry_after
    client = client_for(server, None, max_retries=1)
    helper = client.sender() if sender == "process" else None
    generator = CompletionGenerator(client, concurrency=64, sender=helper)
    generator.start(jobs_for(120))
    texts = [generator.result(f"job{i}").text for i in range(120)]
    generator.stop()
    assert texts == [f"q{i}" for i in range(120)]
    assert generator.progress.errors == 0
    assert answered(server) == 120  # each answered once
    assert server.capacity_rejections > 0  # there was a storm
    assert server.max_in_flight == 8
    assert generator.limiter.limit >= 4  # it followed the quota down, not to 1
    assert generator.limiter.refusals == server.capacity_rejections


def test_a_server_that_refuses_everything_still_ends_each_call_after_max_retries(
    server: FakeOpenAI,
) -> None:
    """Nothing gets through: every 429 counts, as any failure does."""
    server.fault("429", times=None, retry_after=0)
    generator = CompletionGenerator(client_for(server, None, max_retries=2), concurrency=4)
    generator.start(jobs_for(4))
    errors = []
    for i in range(4):
        with pytest.raises(ModelCallError) as info:
            generator.result(f"job{i}")
        errors.append((info.value.kind, info.value.attempts))
    generator.stop()
    assert errors == [("rate_limit", 3)] * 4
    assert len(server.requests) == 12


def test_the_run_that_ends_last_deletes_its_scratch_cache_and_only_stale_others(
    tmp_path: Path,
) -> None:
    """The controller (or a serial run) deletes the run's scratch cache, and one an
    interrupted run left a day ago; another run's, still going, stays. A worker deletes
    nothing: the others may still read it."""
    inflight = tmp_path / ".modelopt" / "inflight"
    ours, running, stale = (inflight / name for name in ("run-1", "run-2", "run-0"))
    for path in (ours, running, stale):
        ResponseCache(path, "new").claim("ab" * 32)
    os.utime(stale, (time.time() - 2 * 86400,) * 2)

    client = ModelClient(base_url=None, timeout=1, max_retries=0)

    def prompt(path: Path, display: str | None) -> Prompt:
        return load_prompt(path, display=display)

    def planner() -> Planner:
        run_dir = tmp_path / ".modelopt" / "runs" / "run-1"
        return Planner(Settings(), lambda: client, prompt, run_dir)

    worker = planner()
    worker.collected(3, worker=True)
    worker.close()
    assert ours.exists()
    planner().close()
    assert sorted(p.name for p in inflight.iterdir()) == ["run-2"]
