"""Model calls: the llm fixture, both APIs, retries, errors as errors, no secret on disk."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.failures import backoff
from pytest_modelopt.model.types import ModelCallError
from pytest_modelopt.secrets import redact
from tests.conftest import TEST_KEY, Project
from tests.support import openapi

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


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


def test_unknown_price_is_none_and_overrides_apply(server: FakeOpenAI) -> None:
    from pytest_modelopt.config import Price

    client = client_for(server, prices={"my-local": Price(input=1.0, output=2.0)})
    assert client.chat("some-unpriced-model", [{"role": "user", "content": "a b"}]).cost is None
    out = client.chat("my-local", [{"role": "user", "content": "a b c"}])
    assert out.cost == pytest.approx((3 * 1.0 + 3 * 2.0) / 1e6)


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


def test_redact_removes_keys_and_bearer_tokens() -> None:
    text = f"bad key {TEST_KEY} and Authorization: Bearer abc.def and sk-proj-AbCdEf123456"
    cleaned = redact(text, (TEST_KEY,))
    assert TEST_KEY not in cleaned
    assert "abc.def" not in cleaned
    assert "sk-proj-AbCdEf123456" not in cleaned


def test_backoff_honours_retry_after_and_grows() -> None:
    assert backoff(0, 2.5) == 2.5
    assert backoff(5, 1000) == 120
    assert 0.125 <= backoff(0, None) <= 0.25
    assert 2.0 <= backoff(4, None) <= 4.0


# -- through pytest ---------------------------------------------------------------------


def test_llm_fixture_chat_respond_and_async(project: Project, server: FakeOpenAI) -> None:
    project.test(
        """
        import asyncio
        import pytest

        @pytest.mark.eval()
        def test_api(llm, model):
            assert llm is model
            assert llm.name == "gpt-4.1-mini"
            assert llm.chat([{"role": "user", "content": "hi"}]).text == "hi"
            assert llm.respond("there").text == "there"
            texts = asyncio.run(_both(llm))
            assert texts == ["a", "b"]

        async def _both(llm):
            a = await llm.achat([{"role": "user", "content": "a"}])
            b = await llm.arespond("b")
            return [a.text, b.text]

        def test_outside_an_eval(llm):
            assert llm.chat([{"role": "user", "content": "plain"}]).text == "plain"
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    (case,) = project.cases()
    assert case["calls"] == 4
    assert case["output"] == "b"
    assert case["input"] == "b"


def test_api_error_is_an_error_not_a_failure(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.known_models = {"gpt-4.1-mini"}
    project.dataset("data/d.jsonl", [{"id": "a", "q": "x"}, {"id": "b", "q": "y"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="data/d.jsonl", threshold=0.5)
        def test_declared(completion):
            assert completion.text

        @pytest.mark.eval(threshold=0.5)
        def test_imperative(llm):
            llm.chat([{"role": "user", "content": "hello"}])
        """
    )
    result = project.run("--eval-models", "gpt-4.1-mini,no-such-model", *mode)
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["errors"]) == (3, 3)
    assert "failed" not in outcomes
    result.stdout.fnmatch_lines(
        [
            "*test_suite::test_declared [[]a[]]: not_found: HTTP 404: The model `no-such-model`*",
            "errors (not counted in pass rates):",
            "  3 x not_found: HTTP 404: The model `no-such-model` does not exist*",
        ]
    )
    errors = [c for c in project.cases() if c["status"] == "error"]
    assert {(c["model"], c["error"]["kind"]) for c in errors} == {("no-such-model", "not_found")}
    rows = {(r["eval"], r["model"]): r for r in project.summary()["evals"]}
    assert rows[("test_suite::test_declared", "no-such-model")]["verdict"] == "error"
    assert rows[("test_suite::test_declared", "gpt-4.1-mini")]["pass_rate"] == 1.0


def test_a_flaky_server_loses_no_case(project: Project, server: FakeOpenAI) -> None:
    server.fault("429", times=3, retry_after=0)
    server.fault("500", times=2, contains="r3")
    server.fault("malformed", times=1, contains="r5")
    rows = [{"id": f"r{i}", "q": f"r{i}"} for i in range(8)]
    project.dataset("data/d.jsonl", rows)
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="data/d.jsonl")
        def test_echo(completion, case):
            assert completion.text == case["q"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=8)
    assert len(project.cases()) == 8


def test_no_secret_is_written_anywhere(project: Project, server: FakeOpenAI) -> None:
    server.fault("401", times=None, model="locked-model")
    project.test(
        """
        import pytest

        @pytest.mark.eval()
        def test_call(llm):
            llm.chat([{"role": "user", "content": "hi"}])
        """
    )
    result = project.run("--eval-models", "gpt-4.1-mini,locked-model", "--eval-json", "out.json")
    assert TEST_KEY not in result.stdout.str()
    written = [p for p in project.path.rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in written)
    for path in written:
        assert TEST_KEY.encode() not in path.read_bytes(), path
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_request_hook_adjusts_every_call(project: Project, server: FakeOpenAI) -> None:
    project.file(
        "conftest.py",
        """
        def pytest_modelopt_request(request, context):
            request["metadata"] = {"eval": context.eval, "case": context.case_id}
            request["temperature"] = 0
        """,
    )
    project.dataset("d.jsonl", [{"id": "c1", "q": "hello"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_one(completion):
            assert completion.text == "hello"
        """
    )
    project.run().assert_outcomes(passed=1)
    (request,) = server.requests
    assert request.body["metadata"] == {"eval": "test_suite::test_one", "case": "c1"}
    assert request.body["temperature"] == 0
