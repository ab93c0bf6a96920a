"""Prices: an unknown model's cost is unknown, and config overrides apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.client import ModelClient

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


def client_for(server: FakeOpenAI, **kwargs: object) -> ModelClient:
    options: dict[str, object] = {"base_url": server.base_url, "timeout": 5.0, "max_retries": 2}
    options.update(kwargs)
    return ModelClient(**options)  # type: ignore[arg-type]


def test_unknown_price_is_none_and_overrides_apply(server: FakeOpenAI) -> None:
    from pytest_modelopt.config import Price

    client = client_for(server, prices={"my-local": Price(input=1.0, output=2.0)})
    assert client.chat("some-unpriced-model", [{"role": "user", "content": "a b"}]).cost is None
    out = client.chat("my-local", [{"role": "user", "content": "a b c"}])
    assert out.cost == pytest.approx((3 * 1.0 + 3 * 2.0) / 1e6)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_cached_input_is_charged_at_its_rate_and_reasoning_as_output(
    server: FakeOpenAI, api: str
) -> None:
    """Both APIs' usage details are read (``prompt_tokens_details`` /
    ``input_tokens_details.cached_tokens``, ``completion_tokens_details`` /
    ``output_tokens_details.reasoning_tokens``); cached tokens are a part of the input
    charged at the cached rate, reasoning tokens a part of the output charged as output."""
    from pytest_modelopt.config import Price

    server.answer_details(cached_tokens=12, reasoning_tokens=30)
    prices = {"my-reasoner": Price(input=2.0, cached_input=0.5, output=8.0)}
    client = client_for(server, prices=prices)
    words = " ".join(["word"] * 20)  # the fake server counts a token per word
    for model, expected in (
        # 8 uncached + 12 cached input tokens; 20 answer + 30 reasoning output tokens
        ("my-reasoner", (8 * 2.0 + 12 * 0.5 + 50 * 8.0) / 1e6),  # $0.000422
        ("gpt-4.1-mini", (8 * 0.40 + 12 * 0.10 + 50 * 1.60) / 1e6),  # genai-prices' table
    ):
        messages = [{"role": "user", "content": words}]
        out = client.chat(model, messages) if api == "chat" else client.respond(model, messages)
        assert out.usage.prompt_tokens == 20
        assert out.usage.cached_tokens == 12
        assert out.usage.completion_tokens == 50
        assert out.usage.reasoning_tokens == 30
        assert out.cost == pytest.approx(expected)
    assert expected == pytest.approx(0.0000844)
