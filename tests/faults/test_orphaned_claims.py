"""Orphaned claims do not stall the others: a claim whose owner died (an xdist worker killed
while it held a request) is taken over as soon as that is known, not after a timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from pytest_modelopt.model.cache import CacheEntry, ResponseCache

if TYPE_CHECKING:
    from pathlib import Path

KEY = "ab" + "0" * 62


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_claim_of_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache._claim_path(KEY).parent.mkdir(parents=True)
    cache._claim_path(KEY).write_text(f"{socket.gethostname()} {_dead_pid()}\n")
    started = time.monotonic()
    assert not cache.wait_for(KEY, timeout=60)  # no answer: the caller takes over
    assert cache.claim(KEY)
    assert time.monotonic() - started < 2


def test_a_claim_of_a_live_process_is_respected(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    assert cache.claim(KEY)
    other = ResponseCache(tmp_path)
    assert not other.claim(KEY)  # this very process is alive
    started = time.monotonic()
    assert not other.wait_for(KEY, timeout=0.5)
    assert time.monotonic() - started >= 0.5
    cache.release(KEY)
    assert other.claim(KEY)


def test_a_claim_from_another_host_waits_for_its_staleness(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    path = cache._claim_path(KEY)
    path.parent.mkdir(parents=True)
    path.write_text("some-other-host 12345\n")
    assert not cache.claim(KEY, stale_after=600)
    old = time.time() - 700
    os.utime(path, (old, old))
    assert cache.claim(KEY, stale_after=600)


def test_a_corrupt_entry_is_no_answer(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.path(KEY).parent.mkdir(parents=True)
    cache.path(KEY).write_text('{"schema_version": 1, "endpo')
    assert not cache.exists(KEY)
    entry = CacheEntry(
        endpoint="/chat/completions",
        sample=0,
        request={},
        response={"x": 1},
        latency_s=0.1,
        created_at=0.0,
    )
    cache.put(KEY, entry)
    assert cache.exists(KEY)
