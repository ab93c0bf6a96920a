"""Send declared requests from a helper process, so the SDK's CPU runs on another core.

The official SDK spends a few milliseconds of CPU on each request (building options,
httpx, parsing). In the pytest process that CPU shares one interpreter lock with the test
loop, so generation and tests add up instead of overlapping. The plugin therefore hands
each prepared request (the request hook already applied, the cache already missed) to
a child process running ``AsyncOpenAI`` (``processes`` of them take requests in turn; one
is the default: on 2 cores a second only competes with the pytest process, measured in
docs/benchmarks.md); the child sends it once and answers with the raw
response body or a classified failure. Retries, backoff, the rate limiter, the cache and
costs all stay in the parent, exactly as for in-process calls.

Protocol: JSON lines. Parent → child ``{"id", "path", "body", "timeout"}``; child → parent
``{"id", "status", "content", "latency"}`` on an answer, ``{"id", "failure": {...}}`` on a
failed attempt. The API key reaches the child through its environment only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from .failures import Failure, SenderFailure

BASE_URL_VARIABLE = "PYTEST_MODELOPT_SENDER_BASE_URL"
HEADERS_VARIABLE = "PYTEST_MODELOPT_SENDER_HEADERS"
# A line can carry a long prompt or answer; asyncio's default limit is 64 KiB.
LINE_LIMIT = 64 * 1024 * 1024


class _Child:
    """One helper process and this loop's pipes to it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Sender:
    """The parent's side: ``processes`` children, started ahead (``warm_up``) or on the
    first request; requests go to them in turn."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        processes: int = 1,
        transport: str = "auto",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.headers = dict(headers or {})
        self.transport = transport
        self._children: list[_Child | None] = [None] * max(1, processes)
        self._lock: asyncio.Lock | None = None
        self._next_id = 0

    def warm_up(self) -> None:
        """Start the children now, so their start-up (``import openai``) overlaps collection."""
        for index, child in enumerate(self._children):
            if child is None:
                self._children[index] = _Child(self._spawn())

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The key, the base URL (which may hold credentials) and the header values reach the
        # child through its environment: a command line is visible to every user (ps).
        env = dict(os.environ)
        if self.api_key:
            env["OPENAI_API_KEY"] = self.api_key
        env.pop(BASE_URL_VARIABLE, None)
        if self.base_url:
            env[BASE_URL_VARIABLE] = self.base_url
        env[HEADERS_VARIABLE] = json.dumps(self.headers)
        return subprocess.Popen(
            [sys.executable, "-m", "pytest_modelopt.model.sender_child", self.transport],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    async def post(self, path: str, body: dict[str, Any], timeout: float) -> tuple[bytes, float]:
        """The response body and latency of one attempt; ``SenderFailure`` otherwise."""

        self._next_id += 1
        request_id = self._next_id
        child, writer = await self._ensure(request_id % len(self._children))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        child.pending[request_id] = future
        line = json.dumps({"id": request_id, "path": path, "body": body, "timeout": timeout})
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            answer = await future
        except (ConnectionError, RuntimeError) as exc:  # the child died under us
            failure = Failure("connection", f"sender process: {exc}", None, True)
            raise SenderFailure(failure) from None
        finally:
            child.pending.pop(request_id, None)
        if "failure" in answer:
            raise SenderFailure(Failure(**answer["failure"]))
        return answer["content"].encode(), float(answer["latency"])

    async def _ensure(self, index: int) -> tuple[_Child, asyncio.StreamWriter]:
        """This loop's pipes to child ``index``, starting or restarting it as needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            child = self._children[index]
            if child is not None and child.alive and child.writer is not None:
                return child, child.writer
            if child is None or not child.alive:
                child = self._children[index] = _Child(self._spawn())
            proc = child.proc
            assert proc.stdin is not None
            assert proc.stdout is not None
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=LINE_LIMIT)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, proc.stdin
            )
            child.writer = asyncio.StreamWriter(transport, protocol, None, loop)
            child.reader = asyncio.create_task(self._read(reader, child))
            return child, child.writer

    async def _read(self, reader: asyncio.StreamReader, child: _Child) -> None:
        while raw := await reader.readline():
            answer = json.loads(raw)
            future = child.pending.get(answer["id"])
            if future is not None and not future.done():
                future.set_result(answer)
        code = await asyncio.to_thread(child.proc.wait)

        died = Failure("connection", f"the sender process exited ({code})", None, True)
        child.writer = None
        for future in list(child.pending.values()):  # retried: the next attempt respawns it
            if not future.done():
                future.set_result({"failure": asdict(died)})

    def kill(self) -> None:
        """Stop children that were warmed up but will not be used."""
        for child in self._children:
            if child is not None and child.alive:
                child.proc.kill()
                child.proc.wait()

    async def close(self) -> None:
        for child in self._children:
            if child is None:
                continue
            if child.writer is not None:
                child.writer.close()
                child.writer = None
            elif child.proc.stdin is not None:
                child.proc.stdin.close()  # warmed up, never used
            try:
                await asyncio.wait_for(asyncio.to_thread(child.proc.wait), 5)
            except asyncio.TimeoutError:
                child.proc.kill()
                await asyncio.to_thread(child.proc.wait)
            if child.reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await child.reader
