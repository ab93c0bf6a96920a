"""Connection failures are told truthfully — refused, a name that does not resolve, a
timeout, a request the client would not send — each with the advice that fits it."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import ModelCallError

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error(base_url: str, **options: object) -> ModelCallError:
    client = ModelClient(base_url=base_url, timeout=2.0, max_retries=0, **options)  # type: ignore[arg-type]
    with pytest.raises(ModelCallError) as caught:
        client.chat("m", [{"role": "user", "content": "hi"}])
    return caught.value


def test_a_refused_connection_says_nothing_listens() -> None:
    error = _error(f"http://127.0.0.1:{_closed_port()}/v1")
    assert error.kind == "connection_refused"
    assert "nothing listens at the base URL" in error.message
    assert "modelopt serve-local" in error.message


def test_a_name_that_does_not_resolve_says_check_the_base_url() -> None:
    error = _error("http://no-such-host.invalid/v1")
    assert error.kind == "dns"
    assert "does not resolve" in error.message
    assert "--eval-base-url" in error.message


def test_a_timeout_is_a_timeout(server: FakeOpenAI) -> None:
    server.fault("timeout", delay=5)
    client = ModelClient(base_url=server.base_url, timeout=0.5, max_retries=0)
    with pytest.raises(ModelCallError) as caught:
        client.chat("m", [{"role": "user", "content": "hi"}])
    assert caught.value.kind == "timeout"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_the_three_are_told_apart_on_the_async_path_too(transport: str) -> None:
    import asyncio

    client = ModelClient(
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        timeout=2.0,
        max_retries=0,
        transport=transport,
    )

    async def call() -> None:
        try:
            await client.acall("chat", {"model": "m", "messages": []}, owned_loop=True)
        finally:
            await client.aclose()

    with pytest.raises(ModelCallError) as caught:
        asyncio.run(call())
    assert caught.value.kind == "connection_refused"


def test_a_request_the_transport_refuses_is_not_an_unreadable_response(
    server: FakeOpenAI,
) -> None:
    """aiohttp will not send credentials written in a URL: that is the client's refusal,
    not a malformed answer from the server."""
    import asyncio

    client = ModelClient(
        base_url=server.base_url.replace("http://", "http://bob:pw@"),
        timeout=2.0,
        max_retries=3,
        transport="aiohttp",
    )

    async def call() -> None:
        try:
            await client.acall("chat", {"model": "m", "messages": []}, owned_loop=True)
        finally:
            await client.aclose()

    with pytest.raises(ModelCallError) as caught:
        asyncio.run(call())
    assert caught.value.kind == "client"
    assert "could not be sent" in caught.value.message
    assert caught.value.attempts == 1  # not retried: it would be refused again
    assert server.requests == []
