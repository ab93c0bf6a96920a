"""Content-addressed cache of model calls: record once, replay for free, run offline.

An entry's key is the SHA-256 of the endpoint, the full request body (model, messages,
every parameter) and the sample index — never the API key or the server's URL. Layout::

    <cache dir>/<first 2 hex of key>/<key>.json    one CacheEntry per file

Each entry is written to a temporary file and renamed into place, so any number of
processes (xdist workers, parallel CI jobs) can share a cache without locks: a reader sees
a whole entry or none. An entry that does not parse is treated as missing and rewritten.
A hit touches the file (at most once an hour), so ``modelopt cache prune --older-than``
keeps what is still used.
The directory can be committed (the example project ships its recordings) or kept in a CI
cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..images import key_form

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

RecordMode = Literal["new", "none", "all", "off"]
_HOST = socket.gethostname()
RECORD_MODES: tuple[RecordMode, ...] = ("new", "none", "all", "off")
SCHEMA_VERSION = 1
TOUCH_AFTER_S = 3600.0  # a replay older than this touches its entry, for prune --older-than


class CacheEntry(BaseModel):
    """One recorded response, with what is needed to replay it faithfully."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    endpoint: str
    sample: int
    request: dict[str, Any]
    response: dict[str, Any]
    latency_s: float
    created_at: float
    # USD as priced when recorded (None: no price known), so a replay needs no price table;
    # absent in entries written before it was kept, which are priced on replay instead.
    cost_usd: float | None = None
    cost_recorded: bool = False


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def cache_key(endpoint: str, body: Mapping[str, Any], sample: int) -> str:
    canonical = json.dumps(
        {"endpoint": endpoint, "request": body, "sample": sample},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(key_form(canonical).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    by_model: dict[str, int]
    oldest: float | None
    newest: float | None


class ResponseCache:
    def __init__(self, root: Path, mode: RecordMode = "new") -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f"record mode must be one of {RECORD_MODES}, got {mode!r}")
        self.root = root
        self._root = os.fspath(root)  # os.path on the hot path: pathlib costs ~10 µs a call
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self.writes = 0

    @property
    def reads(self) -> bool:
        return self.mode in ("new", "none")

    @property
    def writes_enabled(self) -> bool:
        return self.mode in ("new", "all")

    def has_entries(self) -> bool:
        """Whether anything is recorded (cheap: stops at the first entry)."""
        with contextlib.suppress(OSError):
            for shard in os.scandir(self.root):
                if shard.is_dir() and len(shard.name) == 2:
                    with os.scandir(shard.path) as files:
                        if any(f.name.endswith(".json") for f in files):
                            return True
        return False

    def path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        return f"{self._root}{os.sep}{key[:2]}{os.sep}{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry, or None when it is missing or unreadable (never an exception)."""
        if not self.reads:
            return None
        path = self._file(key)
        try:
            fd = os.open(path, os.O_RDONLY)  # os calls: a file object costs more than the read
            try:
                stat = os.fstat(fd)
                raw = os.read(fd, stat.st_size)
            finally:
                os.close(fd)
            modified = stat.st_mtime
            entry = CacheEntry.model_validate_json(raw)
        except (OSError, ValidationError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        if time.time() - modified > TOUCH_AFTER_S:
            with contextlib.suppress(OSError):  # a read-only checkout of committed recordings
                os.utime(path)
        return entry

    def exists(self, key: str) -> bool:
        """Whether a readable entry is there, whatever the mode reads: a look, not a replay
        (the xdist workers' way to see that another one answered a request). A corrupt
        entry is not an answer: it is fetched again."""
        try:
            with open(self._file(key), "rb") as handle:
                CacheEntry.model_validate_json(handle.read())
        except (OSError, ValidationError, ValueError):
            return False
        return True

    def put(self, key: str, entry: CacheEntry) -> None:
        """Write an entry (to a temporary file renamed into place; on a failure, such as a
        full disk, no temporary file is left and the OSError is the caller's to report)."""
        if not self.writes_enabled:
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            tmp.write_text(entry.model_dump_json(), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.writes += 1

    def writable(self) -> bool:
        """Whether an entry can be written now (a probe entry, written and removed): a full
        disk is found before answers are paid for that could not be shared."""
        key = "00" + "probe" + f"{os.getpid():059d}"
        probe = CacheEntry(
            endpoint="", sample=0, request={}, response={}, latency_s=0.0, created_at=0.0
        )
        writes = self.writes
        try:
            self.put(key, probe)
        except OSError:
            return False
        finally:
            self.writes = writes
        with contextlib.suppress(OSError):
            self.path(key).unlink()
        return True

    # -- cooperation between processes ----------------------------------------------------
    # A claim is a file next to the entry, created exclusively and stamped with its owner
    # (host and pid): a claim whose owner is known to be gone (a worker killed mid-request)
    # is taken over at once, not after a timeout; one from another host (a cache shared
    # over a network) is taken over when it is older than ``stale_after``.

    def _claim_path(self, key: str) -> Path:
        return self.path(key).with_suffix(".claim")

    def claim(self, key: str, stale_after: float = 600.0) -> bool:
        """Take the right to send this request; False while another live process holds it."""
        path = self._claim_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    if not self._claim_abandoned(path, stale_after):
                        return False
                    path.unlink()  # its owner is gone: take it over
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, f"{_HOST} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
            return True
        return False

    @staticmethod
    def _claim_abandoned(path: Path, stale_after: float) -> bool:
        """The claim's owner is known to be gone (a dead pid on this host), or it is stale."""
        try:
            stamp = path.read_text(encoding="utf-8").split()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        except (OSError, UnicodeDecodeError):
            return False
        if len(stamp) == 2 and stamp[0] == _HOST and stamp[1].isdigit():
            return not _alive(int(stamp[1]))
        if not stamp and age < 5:  # being written right now
            return False
        return age >= stale_after

    def release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._claim_path(key).unlink()

    def wait_for(self, key: str, timeout: float, stale_after: float = 600.0) -> bool:
        """Wait until a readable entry is there or the claim is gone (released, or its owner
        died); True when the entry is there."""
        deadline = time.monotonic() + timeout
        claim = self._claim_path(key)
        polls = 0
        while time.monotonic() < deadline:
            if self.exists(key):
                return True
            if not claim.exists():
                return self.exists(key)
            polls += 1
            if not polls % 20 and self._claim_abandoned(claim, stale_after):
                return self.exists(key)  # its owner died holding it: the caller takes over
            time.sleep(0.01)
        return self.exists(key)

    # -- maintenance (``modelopt cache``) -------------------------------------------------

    def files(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from self.root.glob("??/*.json")

    def stats(self) -> CacheStats:
        count = size = 0
        models: Counter[str] = Counter()
        oldest: float | None = None
        newest: float | None = None
        for path in self.files():
            stat = path.stat()
            count += 1
            size += stat.st_size
            oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
            newest = stat.st_mtime if newest is None else max(newest, stat.st_mtime)
            try:
                models[str(json.loads(path.read_bytes())["request"].get("model"))] += 1
            except (OSError, ValueError, KeyError, AttributeError):
                models["(unreadable)"] += 1
        return CacheStats(count, size, dict(models.most_common()), oldest, newest)

    def prune(self, older_than_s: float) -> int:
        """Delete entries not written or replayed for ``older_than_s`` seconds."""
        cutoff = time.time() - older_than_s
        removed = 0
        for path in list(self.files()):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def clear(self) -> int:
        count = sum(1 for _ in self.files())
        if self.root.is_dir():
            shutil.rmtree(self.root)
        return count
