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
