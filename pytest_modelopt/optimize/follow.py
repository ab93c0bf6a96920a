"""Follow a fine-tuning job to its end on any backend: poll its state, hand over new events.

Generic over :class:`~pytest_modelopt.optimize.base.Backend`, so ``modelopt jobs follow``,
``--eval-distill-to`` and a conftest's own flow show progress the same way whichever
backend runs the job. ``job.json`` is rewritten after every refresh, so a follower that
is stopped (Ctrl-C, a CI timeout) leaves the last known state behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .jobs import BackendError, JobEvent, JobInfo, write_job

if TYPE_CHECKING:
    from collections.abc import Callable

    from .jobs import Backend

__all__ = ["follow"]

#: Transient failures in a row (``BackendError.retryable``) before following gives up.
MAX_FAILURES = 5


def follow(
    backend: Backend,
    job: JobInfo,
    on_event: Callable[[JobEvent], None] | None = None,
    poll_interval: float = 10.0,
    timeout: float = 24 * 3600.0,
    *,
    after: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobInfo:
    """Poll ``backend`` until ``job`` is done or ``timeout`` seconds have passed.

    Returns the last state seen: check ``.done``, since a job still running at the timeout
    is returned, not raised (follow it again later). Each event is passed to ``on_event``
    once, oldest first; ``after`` is the cursor (an event id) to resume from. A transient
    error is retried on the next poll, up to ``MAX_FAILURES`` in a row.
    """
    deadline = clock() + timeout
    cursor = after
    seen: set[tuple[float, str, str]] = set()  # for backends whose events carry no id
    failures = 0
    while True:
        try:
            job = backend.refresh(job)
            if job.launch_dir:
                write_job(Path(job.launch_dir), job)
            new = backend.events(job, cursor)
            failures = 0
        except BackendError as exc:
            failures += 1
            if not exc.retryable or failures >= MAX_FAILURES:
                raise
            new = []
        for event in new:
            if event.id is not None:
                cursor = event.id
            else:
                key = (event.created_at, event.level, event.message)
                if key in seen:
                    continue
                seen.add(key)
            if on_event is not None:
                on_event(event)
        if job.done or clock() + poll_interval > deadline:
            return job
        sleep(poll_interval)
