"""The helper process that sends declared requests: killed, it is restarted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pytest_modelopt.generate.generator import (
    CompletionGenerator,
    Job,
)
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


def jobs_for(n: int) -> list[Job]:
    def build(i: int) -> Any:
        body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
        return lambda: ("chat", body, CallContext("/chat/completions", "m"), body["messages"])

    return [Job(f"job{i}", build(i)) for i in range(n)]


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
