"""The agent pool: each job once, at most ``concurrency`` at once, within its window ahead
of the tests; a test's own job moves to the front; nothing waits forever."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pytest_modelopt.generate.agents import AgentJob, AgentPool


class Probe:
    """Jobs that record when they run and how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.running = 0
        self.most = 0

    def job(self, name: str, seconds: float = 0.02) -> AgentJob:
        async def run() -> str:
            with self.lock:
                self.started.append(name)
                self.running += 1
                self.most = max(self.most, self.running)
            await asyncio.sleep(seconds)
            with self.lock:
                self.running -= 1
            if name == "boom":
                raise ValueError("the job's own bug")
            return f"done {name}"

        return AgentJob(name, run)


def test_each_job_runs_once_at_most_concurrency_at_once() -> None:
    probe = Probe()
    pool = AgentPool(concurrency=4)
    names = [f"j{i}" for i in range(12)]
    pool.start([probe.job(name) for name in names])
    assert [pool.result(name) for name in names] == [f"done {name}" for name in names]
    pool.stop()
    assert sorted(probe.started) == sorted(names)
    assert probe.most == 4


def test_the_window_holds_and_a_test_jumps_the_queue() -> None:
    probe = Probe()
    pool = AgentPool(concurrency=1)  # window: 4 jobs ahead of the tests
    names = [f"j{i}" for i in range(10)]
    pool.start([probe.job(name, 0.01) for name in names])
    assert pool.result("j8") == "done j8"  # not reached yet: it goes first
    assert "j8" in probe.started[:2]  # first, or after the one already in flight
    assert len(probe.started) <= 1 + 4 + 1  # j8, the window, and one in flight
    for name in names:
        if name != "j8":
            pool.result(name)
    pool.stop()
    assert sorted(probe.started) == sorted(names)


def test_a_job_that_raises_is_its_tests_error_and_stopping_releases_the_rest() -> None:
    probe = Probe()
    pool = AgentPool(concurrency=2)  # window: 8 jobs ahead of the tests
    jobs = [probe.job("boom"), *(probe.job(f"j{i}") for i in range(20))]
    pool.start(jobs)
    with pytest.raises(ValueError, match="the job's own bug"):
        pool.result("boom")
    pool.stop()
    assert "j19" not in probe.started  # past the window when the pool stopped
    with pytest.raises(RuntimeError, match="stopped"):  # its test hears why, at once
        pool.result("j19")
