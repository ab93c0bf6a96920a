"""``python -m tests.support.fake_openai``: the fake in a process of its own.

For whoever cannot share a process with the tests (a benchmark, a manual session): it
announces its URL on stdout, the one line a parent has to read, and stops cleanly on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING

from .. import fake_openai
from .server import FakeOpenAI

if TYPE_CHECKING:
    from types import FrameType


def main(argv: list[str] | None = None) -> int:
    """Serve as a separate process (benchmarks), announcing the URL on stdout."""
    doc = fake_openai.__doc__
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_openai",
        description=doc.splitlines()[0] if doc else None,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per model request")
    parser.add_argument("--require-key", action="store_true")
    parser.add_argument("--known-models", help="comma-separated; default: every model exists")
    args = parser.parse_args(argv)
    known = None if args.known_models is None else args.known_models.split(",")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = FakeOpenAI(
        args.latency,
        host=args.host,
        port=args.port,
        known_models=known,
        require_key=args.require_key,
    )
    with server:
        print(f"BASE_URL={server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
