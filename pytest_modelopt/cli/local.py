"""``modelopt cache`` and ``modelopt serve-local``: the response cache and the local model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import find_project
from ..model.cache import ResponseCache
from ..model.local_server import LocalModelError, LocalServer
from ..run import settings_for

if TYPE_CHECKING:
    import argparse


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def cmd_cache(args: argparse.Namespace) -> int:
    settings = settings_for(find_project(Path.cwd()))
    cache = ResponseCache(settings.dir / "cache")
    if args.action == "stats":
        stats = cache.stats()
        print(f"{cache.root}: {stats.entries} entries, {stats.bytes / 1024:.1f} KiB")
        for model, count in stats.by_model.items():
            print(f"  {model}: {count}")
        if stats.oldest is not None and stats.newest is not None:
            oldest = datetime.fromtimestamp(stats.oldest, timezone.utc).isoformat(
                timespec="seconds"
            )
            newest = datetime.fromtimestamp(stats.newest, timezone.utc).isoformat(
                timespec="seconds"
            )
            print(f"  last used: {oldest} .. {newest}")
    elif args.action == "prune":
        removed = cache.prune(args.older_than * 86400)
        print(f"removed {removed} entries not used for {args.older_than:g} days from {cache.root}")
    else:
        print(f"removed {cache.clear()} entries from {cache.root}")
    return 0


def cmd_serve_local(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    server = LocalServer(host=args.host, port=args.port, log=args.log, chat_format=args.chat_format)
    try:
        server.start()
    except LocalModelError as exc:
        print(f"modelopt serve-local: {exc}", file=sys.stderr)
        return 1
    with server:
        if command:
            env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
            print(f"modelopt: {server.alias} at {server.base_url}", file=sys.stderr, flush=True)
            return subprocess.call(command, env=env)
        print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
        print(
            f"serving {server.alias} (SmolLM2-135M-Instruct) with llama.cpp; "
            f"in another shell: export OPENAI_BASE_URL={server.base_url}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0
