"""The model client: both APIs, usage and cost, retries, errors as errors, and
the cost a replay keeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.config import Price
from pytest_modelopt.model.cache import CacheEntry, ResponseCache
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import ModelCallError
from tests.support import openapi

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI


def chat_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


def client_for(server: FakeOpenAI, **kwargs: object) -> ModelClient:
    options: dict[str, object] = {"base_url": server.base_url, "timeout": 5.0, "max_retries": 2}
    options.update(kwargs)
    return ModelClient(**options)  # type: ignore[arg-type]


def test_chat_completion_fields(server: FakeOpenAI) -> None:
    server.reply('{"category": "bug", "urgent": true}', contains="json please")
    out = client_for(server).chat(
        "gpt-4.1-mini", [{"role": "user", "content": "json please now"}], temperature=0
    )
    assert out.text == '{"category": "bug", "urgent": true}'
    assert out.json == {"category": "bug", "urgent": True}
    assert out.model == "gpt-4.1-mini"
    assert out.api == "chat"
    assert out.usage.prompt_tokens == 3
    assert out.usage.completion_tokens == 4  # the fake server counts whitespace-separated words
    assert out.latency_s > 0
    assert not out.cached
    # gpt-4.1-mini costs $0.40 / $1.60 per million tokens in genai-prices' table
    assert out.cost == pytest.approx((3 * 0.40 + 4 * 1.60) / 1e6)


def test_a_placeholder_api_key_does_not_corrupt_the_response(server: FakeOpenAI) -> None:
    # OPENAI_API_KEY=x (a local server needs none): redacting "x" would break every JSON key
    # with an x in it ("index") and the response would no longer parse
    server.reply("next text", contains="placeholder")
    out = client_for(server, environ={"OPENAI_API_KEY": "x"}).respond(
        "m", [{"role": "user", "content": "placeholder key"}]
    )
    assert out.text == "next text"


def test_json_inside_a_code_fence_and_non_json(server: FakeOpenAI) -> None:
    server.reply('```json\n{"a": 1}\n```', contains="fenced")
    client = client_for(server)
    assert client.chat("m", [{"role": "user", "content": "fenced"}]).json == {"a": 1}
    assert client.chat("m", [{"role": "user", "content": "plain words"}]).json is None


def test_tool_calls_from_both_apis(server: FakeOpenAI) -> None:
    server.reply_tool_call("lookup_order", {"order_id": "A17"})
    client = client_for(server)
    chat = client.chat("gpt-4.1", [{"role": "user", "content": "where is A17"}])
    (call,) = chat.tool_calls
    assert call["function"]["name"] == "lookup_order"
    assert json.loads(call["function"]["arguments"]) == {"order_id": "A17"}
    resp = client.respond("gpt-4.1", "where is A17")
    (call,) = resp.tool_calls
    assert call["function"]["name"] == "lookup_order"


def test_responses_api_text_and_usage(server: FakeOpenAI) -> None:
    out = client_for(server).respond(
        "gpt-4.1-mini", [{"role": "user", "content": "hello there"}], instructions="be brief"
    )
    assert out.text == "hello there"
    assert out.api == "responses"
    assert out.usage.prompt_tokens > 0
    assert out.usage.completion_tokens == 2
    assert out.cost is not None


def test_requests_match_openai_spec(server: FakeOpenAI) -> None:
    if not openapi.spec_available():
        pytest.skip("OpenAI's OpenAPI spec is not beside the project (../shared/data)")
    client = client_for(server)
    client.chat("gpt-4.1-mini", [{"role": "user", "content": "hi"}], temperature=0, max_tokens=5)
    client.respond("gpt-4.1-mini", "hi", max_output_tokens=16)
    chat, responses = server.requests
    openapi.validate_request(chat.path, chat.body)
    openapi.validate_request(responses.path, responses.body)
    with pytest.raises(AssertionError):
        openapi.validate_request(chat.path, {"model": "x", "messages": "not a list"})


def test_429_is_retried_honouring_retry_after(server: FakeOpenAI) -> None:
    server.fault("429", times=2, retry_after=0.3)
    started = time.monotonic()
    out = client_for(server, max_retries=3).chat("m", [{"role": "user", "content": "ok"}])
    assert out.text == "ok"
    assert time.monotonic() - started >= 0.6
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("kind", "error_kind"),
    [("500", "server"), ("503", "server"), ("malformed", "malformed"), ("429", "rate_limit")],
)
def test_persistent_failures_become_a_model_call_error(
    server: FakeOpenAI, kind: str, error_kind: str
) -> None:
    server.fault(kind, times=None, retry_after=0)  # type: ignore[arg-type]
    with pytest.raises(ModelCallError) as info:
        client_for(server, max_retries=2).chat("m", [{"role": "user", "content": "x"}])
    assert info.value.kind == error_kind
    assert info.value.attempts == 3
    assert "after 3 attempts" in str(info.value)
    assert len(server.requests) == 3


def test_timeout_is_retried_then_an_error(server: FakeOpenAI) -> None:
    server.fault("timeout", times=None, delay=5)
    with pytest.raises(ModelCallError) as info:
        client_for(server, timeout=0.2, max_retries=1).chat("m", [{"role": "user", "content": "x"}])
    assert info.value.kind == "timeout"
    assert len(server.requests) == 2


def test_client_errors_are_not_retried(server: FakeOpenAI) -> None:
    server.known_models = {"gpt-4.1-mini"}
    with pytest.raises(ModelCallError) as info:
        client_for(server).chat("gpt-9-ultra", [{"role": "user", "content": "x"}])
    assert info.value.kind == "not_found"
    assert info.value.status == 404
    assert "gpt-9-ultra" in info.value.message
    assert len(server.requests) == 1


def test_missing_key_against_openai_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    client = ModelClient(base_url=None, timeout=1, max_retries=0, environ={})
    with pytest.raises(ModelCallError) as info:
        client.chat("gpt-4.1", [{"role": "user", "content": "x"}])
    assert info.value.kind == "no_key"
    assert "export OPENAI_API_KEY" in info.value.message
    assert "modelopt serve-local" in info.value.message


def test_async_calls(server: FakeOpenAI) -> None:
    client = client_for(server)

    async def both() -> list[str]:
        a = client.achat("m", [{"role": "user", "content": "one"}])
        b = client.arespond("m", "two")
        return [c.text for c in await asyncio.gather(a, b)]

    assert asyncio.run(both()) == ["one", "two"]


def test_a_replay_keeps_the_cost_priced_when_it_was_recorded(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    """Replays need no price table (genai-prices costs ~0.5 s to import); config prices
    still apply to them, and an entry recorded before costs were kept is priced now."""
    cache = ResponseCache(tmp_path)
    client = ModelClient(base_url=server.base_url, timeout=10, max_retries=0, cache=cache)
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    live = client.call("chat", body)
    assert live.cost is not None
    assert not live.cached
    [path] = cache.files()
    recorded = CacheEntry.model_validate_json(path.read_bytes())
    assert recorded.cost_recorded
    assert recorded.cost_usd == live.cost
    path.write_text(recorded.model_copy(update={"cost_usd": 1.5}).model_dump_json())
    assert client.call("chat", body).cost == 1.5  # as recorded, not priced again
    overridden = ModelClient(
        base_url=server.base_url,
        timeout=10,
        max_retries=0,
        cache=cache,
        prices={"gpt-4.1-mini": Price(input=1_000_000, output=0)},
    )
    assert overridden.call("chat", body).cost == pytest.approx(live.usage.prompt_tokens)
    legacy = recorded.model_dump()
    del legacy["cost_usd"], legacy["cost_recorded"]
    path.write_text(json.dumps(legacy))
    replayed = client.call("chat", body)
    assert replayed.cached
    assert replayed.cost == live.cost
    assert chat_posts(server) == 1
