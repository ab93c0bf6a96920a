"""Following a fine-tuning job on any backend: events once each, transient errors
retried, a bounded wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.optimize.follow import follow
from pytest_modelopt.optimize.jobs import (
    BackendError,
    JobEvent,
    JobInfo,
    Manifest,
    read_job,
)

if TYPE_CHECKING:
    from pathlib import Path


BASE = "gpt-4.1-mini-2025-04-14"


class ScriptedBackend:
    """A backend that plays back a list of states, and errors where told to."""

    name = "scripted"

    def __init__(self, steps: list[str | BackendError], events: list[JobEvent]) -> None:
        self.steps = steps
        self.all_events = events
        self.refreshes = 0
        self.cursors: list[str | None] = []

    def launch(self, manifest: Manifest, launch_dir: Path) -> JobInfo:
        raise NotImplementedError

    def refresh(self, job: JobInfo) -> JobInfo:
        step = self.steps[min(self.refreshes, len(self.steps) - 1)]
        self.refreshes += 1
        if isinstance(step, BackendError):
            raise step
        return job.model_copy(update={"status": step})

    def events(self, job: JobInfo, after: str | None = None) -> list[JobEvent]:
        self.cursors.append(after)
        shown = self.all_events[: self.refreshes]  # one more event per poll
        ids = [event.id for event in shown]
        return shown[ids.index(after) + 1 :] if after is not None and after in ids else shown

    def cancel(self, job: JobInfo) -> JobInfo:
        raise NotImplementedError


def scripted_job(launch_dir: Path | None = None) -> JobInfo:
    return JobInfo(
        backend="scripted",
        id="job-1",
        status="queued",
        base_model=BASE,
        method="sft",
        dataset_sha256="0" * 64,
        launch_dir=None if launch_dir is None else str(launch_dir),
    )


def numbered(n: int, *, ids: bool = True) -> list[JobEvent]:
    return [
        JobEvent(id=f"e{i}" if ids else None, created_at=float(i), message=f"event {i}")
        for i in range(n)
    ]


def test_follow_passes_each_event_once_and_writes_job_json(tmp_path: Path) -> None:
    backend = ScriptedBackend(["queued", "running", "running", "succeeded"], numbered(4))
    seen: list[str] = []
    final = follow(backend, scripted_job(tmp_path), lambda e: seen.append(e.message), 0.0)
    assert final.status == "succeeded"
    assert seen == ["event 0", "event 1", "event 2", "event 3"]
    assert backend.cursors == [None, "e0", "e1", "e2"]
    assert read_job(tmp_path) == final


def test_follow_dedupes_events_without_ids() -> None:
    backend = ScriptedBackend(["running", "running", "succeeded"], numbered(3, ids=False))
    seen: list[str] = []
    follow(backend, scripted_job(), lambda e: seen.append(e.message), 0.0)
    assert seen == ["event 0", "event 1", "event 2"]


def test_follow_retries_transient_errors_only() -> None:
    flaky = BackendError("HTTP 503", retryable=True)
    backend = ScriptedBackend([flaky, flaky, "running", "succeeded"], [])
    assert follow(backend, scripted_job(), poll_interval=0.0).status == "succeeded"
    assert backend.refreshes == 4

    backend = ScriptedBackend([flaky] * 10, [])
    with pytest.raises(BackendError, match="HTTP 503"):
        follow(backend, scripted_job(), poll_interval=0.0)
    assert backend.refreshes == 5

    backend = ScriptedBackend([BackendError("HTTP 400: no"), "succeeded"], [])
    with pytest.raises(BackendError, match="HTTP 400"):
        follow(backend, scripted_job(), poll_interval=0.0)
    assert backend.refreshes == 1


def test_follow_returns_a_running_job_at_the_timeout() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    backend = ScriptedBackend(["running"], [])
    job = follow(backend, scripted_job(), None, 10.0, 35.0, sleep=sleep, clock=lambda: now[0])
    assert job.status == "running"
    assert sleeps == [10.0, 10.0, 10.0]
    assert backend.refreshes == 4
