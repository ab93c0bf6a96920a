"""The response cache: stable keys, atomic entries shared by processes, cheap replays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.cache import CacheEntry, ResponseCache, cache_key

if TYPE_CHECKING:
    from pathlib import Path


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
