"""The helper process that sends declared requests (see ``sender.py`` for why).

Run as ``python -m pytest_modelopt.model.sender_child TRANSPORT``; the base URL, the
header values and the key come through its environment, never its command line. It reads
one JSON request per line on stdin, sends each once with ``AsyncOpenAI`` and writes the
raw response body, or the classified failure, as one JSON line on stdout. The API key
reaches it through its environment only, never its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from .failures import Failure, SenderFailure, classify, not_sent
from .sender import BASE_URL_VARIABLE, HEADERS_VARIABLE, LINE_LIMIT
from .types import ModelCallError
from .wire import async_http_client, response_class


async def _serve(transport: str, base_url: str | None, headers: dict[str, str]) -> None:
    from openai import AsyncOpenAI  # openai: the helper's reason to exist, imported once it runs

    key = os.environ.get("OPENAI_API_KEY") or "sk-no-key-required"
    unusable: Failure | None = None  # a transport that cannot be had: every request says so
    try:
        http_client = async_http_client(transport)
    except ModelCallError as exc:
        http_client, unusable = None, Failure(exc.kind, exc.message, None, False)
    client = AsyncOpenAI(
        api_key=key,
        base_url=base_url,
        max_retries=0,
        http_client=http_client,
        default_headers=headers or None,
    )
    response_type = response_class()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: dict[str, Any]) -> None:
        started = loop.time()
        try:
            if unusable is not None:
                raise SenderFailure(unusable)
            response = await client.post(
                request["path"],
                cast_to=response_type,
                body=request["body"],
                options={"timeout": request["timeout"], "max_retries": 0},
            )
            answer: dict[str, Any] = {
                "id": request["id"],
                "status": response.status_code,
                "content": response.content.decode("utf-8", errors="replace"),
                "latency": loop.time() - started,
            }
        except Exception as exc:
            answer = {"id": request["id"], "failure": asdict(classify(not_sent(exc)))}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()

    while raw := await reader.readline():
        task = asyncio.create_task(one(json.loads(raw)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()


def main(argv: list[str]) -> int:
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        base_url = os.environ.get(BASE_URL_VARIABLE) or None
        headers = json.loads(os.environ.get(HEADERS_VARIABLE) or "{}")
        asyncio.run(_serve(argv[0], base_url, headers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
