"""The SDK's transports: aiohttp when it can be, httpx when asked."""

from __future__ import annotations

import pytest

from pytest_modelopt.model.types import ModelCallError


def test_the_transport_is_the_sdks_aiohttp_client_when_it_can_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openai

    from pytest_modelopt.model.wire import async_http_client

    assert async_http_client("httpx") is None  # the SDK's own default
    assert isinstance(async_http_client("auto"), openai.DefaultAioHttpClient)
    assert isinstance(async_http_client("aiohttp"), openai.DefaultAioHttpClient)

    class Missing:
        def __init__(self) -> None:
            raise RuntimeError("To use the aiohttp client you must have installed aiohttp")

    monkeypatch.setattr(openai, "DefaultAioHttpClient", Missing)
    assert async_http_client("auto") is None
    with pytest.raises(ModelCallError, match=r"pip install 'openai\[aiohttp\]'"):
        async_http_client("aiohttp")
