"""An Agents SDK agent run through our model layer: its calls recorded, then replayed with
no network, on the eval's model, and its run turned into the agreed trajectory."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from agents import Agent, GuardrailFunctionOutput, Runner, function_tool, input_guardrail

from pytest_modelopt import graders
from pytest_modelopt.model.agents_sdk import (
    AgentCalls,
    AgentRunner,
    LayerProvider,
    as_completion,
    check_agents,
    trajectory,
)
from pytest_modelopt.model.bound import BoundModel
from pytest_modelopt.model.cache import RecordMode, ResponseCache
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext, ModelCallError
from pytest_modelopt.secrets import known_secrets
from tests.support import openapi
from tests.support.agent_turns import answer_from_tool

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def run(client: ModelClient, agent: Agent[Any], question: str) -> tuple[Any, AgentCalls]:
    provider = LayerProvider(
        client,
        "gpt-4.1-mini",
        context=CallContext(endpoint="/responses", model="gpt-4.1-mini", eval="weather"),
    )
    result = asyncio.run(Runner.run(agent, question, run_config=provider.run_config()))
    return result, provider.calls


def cached_client(base_url: str, tmp_path: Path, mode: RecordMode) -> ModelClient:
    """A client whose response cache is ``tmp_path/cache`` in record mode ``mode``."""
    return ModelClient(
        base_url=base_url,
        timeout=5.0,
        max_retries=0,
        cache=ResponseCache(tmp_path / "cache", mode),
    )


def responses_posts(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path == "/v1/responses"]


def test_an_agent_with_a_tool_is_recorded_then_replayed_offline(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.reply(answer_from_tool)
    # the later rule is tried first: the tool call, until the tool's output is in the input
    server.reply_tool_call("get_weather", {"city": "Paris"}, until_tool_output=True)
    # the agent names another model: the eval's model replaces it
    agent = Agent(name="forecaster", instructions="Answer with the tool.", model="gpt-5-pro")
    agent.tools.append(get_weather)
    record = cached_client(server.base_url, tmp_path, "new")
    result, calls = run(record, agent, "Weather in Paris?")

    assert result.final_output == "It is sunny in Paris."
    sent = responses_posts(server)
    assert [body["model"] for body in sent] == ["gpt-4.1-mini", "gpt-4.1-mini"]
    assert [t["name"] for t in sent[0]["tools"]] == ["get_weather"]
    assert calls.turns == 2
    assert not any(c.cached for c in calls.completions)
    assert all(c.usage.total_tokens > 0 and c.latency_s > 0 for c in calls.completions)
    assert calls.completions[0].tool_calls[0]["function"]["name"] == "get_weather"
    # the SDK's User-Agent header is not taken for a secret (it would be redacted everywhere)
    assert not any("Agents/Python" in secret for secret in known_secrets())

    run_trajectory = trajectory(result, calls.turns)
    call_id = run_trajectory["items"][0]["call_id"]
    assert call_id
    assert run_trajectory == {
        "items": [
            {
                "kind": "tool_call",
                "agent": "forecaster",
                "role": None,
                "content": None,
                "name": "get_weather",
                "arguments": {"city": "Paris"},
                "call_id": call_id,
                "output": None,
                "error": None,
            },
            {
                "kind": "tool_output",
                "agent": "forecaster",
                "role": None,
                "content": None,
                "name": None,
                "arguments": None,
                "call_id": call_id,
                "output": "sunny in Paris",
                "error": None,
            },
            {
                "kind": "message",
                "agent": "forecaster",
                "role": "assistant",
                "content": "It is sunny in Paris.",
                "name": None,
                "arguments": None,
                "call_id": None,
                "output": None,
                "error": None,
            },
        ],
        "turns": 2,
        "final_output": "It is sunny in Paris.",
    }

    # --eval-record none: the same run from the recordings alone; the server is never asked
    before = len(server.requests)
    replay = cached_client("http://127.0.0.1:9", tmp_path, "none")  # nothing listens there
    replayed, replayed_calls = run(replay, agent, "Weather in Paris?")
    assert len(server.requests) == before
    assert replayed.final_output == "It is sunny in Paris."
    assert replayed_calls.turns == 2
    assert all(c.cached for c in replayed_calls.completions)
    assert trajectory(replayed, replayed_calls.turns) == run_trajectory

    # a question never recorded fails closed, naming what to do
    with pytest.raises(ModelCallError, match="eval-record new"):
        run(replay, agent, "Weather in Rome?")


def test_a_pinned_sub_agent_keeps_its_model(server: FakeOpenAI) -> None:
    server.reply("pinned answer", model="gpt-4o")
    client = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0)
    provider = LayerProvider(client, "gpt-4.1-mini", pinned=["gpt-4o"])
    agent = Agent(name="router", instructions="Say hi.", model="gpt-4o")
    result = asyncio.run(Runner.run(agent, "hi", run_config=provider.run_config()))
    assert result.final_output == "pinned answer"
    assert [b["model"] for b in responses_posts(server)] == ["gpt-4o"]


def test_an_agent_with_a_model_object_is_refused() -> None:
    client = ModelClient(base_url="http://127.0.0.1:9", timeout=5.0, max_retries=0)
    own = LayerProvider(client, "gpt-4.1-mini").get_model("gpt-4.1-mini")
    helper = Agent(name="helper", model=own)
    with pytest.raises(ValueError, match="agent 'helper' has a Model object"):
        check_agents(Agent(name="main", handoffs=[helper]))


@function_tool
def lookup_order(order_id: int) -> str:
    """An order's status."""
    raise ValueError(f"no order {order_id}")


def test_a_tool_that_raises_is_in_the_trajectory_with_its_error(server: FakeOpenAI) -> None:
    server.reply(answer_from_tool)
    server.reply_tool_call("lookup_order", {"order_id": 42}, until_tool_output=True)
    client = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0)
    counted: list[tuple[str, Any]] = []
    runner = AgentRunner(
        BoundModel(client, "gpt-4.1-mini", on_call=lambda c, i: counted.append((c.text, i)))
    )
    agent = Agent(name="support", instructions="Look the order up.", tools=[lookup_order])

    run = runner(agent, "Where is order 42?")

    (output,) = [i for i in run.trajectory["items"] if i["kind"] == "tool_output"]
    assert output["error"] == "ValueError: no order 42"
    # the model still sees the SDK's own message: recorded requests do not depend on us
    assert output["output"] == "An error occurred while running the tool. Please try again."
    assert run.final_output == f"It is {output['output']}."
    assert counted == [("", "Where is order 42?"), (run.final_output, "Where is order 42?")]


def test_a_handoff_and_a_guardrail_in_the_trajectory(server: FakeOpenAI) -> None:
    server.reply("Refund approved.", model="gpt-4o")
    server.reply_tool_call("transfer_to_billing", {}, until_tool_output=True)

    @input_guardrail
    def polite(context: Any, agent: Agent[Any], text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"rude": False}, tripwire_triggered=False)

    billing = Agent(name="billing", instructions="Handle refunds.", model="gpt-4o")
    triage = Agent(
        name="triage", instructions="Route.", handoffs=[billing], input_guardrails=[polite]
    )
    client = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0)
    runner = AgentRunner(BoundModel(client, "gpt-4.1-mini"))
    run = runner(triage, "I want a refund", pinned=["gpt-4o"])

    assert [b["model"] for b in responses_posts(server)] == ["gpt-4.1-mini", "gpt-4o"]
    kept = [
        (i["kind"], i["agent"], i["name"], i["content"], i["output"])
        for i in run.trajectory["items"]
    ]
    assert kept == [
        ("guardrail", None, "polite", "passed", '{"rude": false}'),
        ("handoff", "triage", "billing", None, None),
        ("message", "billing", None, "Refund approved.", None),
    ]
    assert (run.trajectory["turns"], run.final_output) == (2, "Refund approved.")


def run_on(client: ModelClient, api: str) -> Any:
    agent = Agent(name="forecaster", instructions="Answer with the tool.", tools=[get_weather])
    return AgentRunner(BoundModel(client, "gpt-4.1-mini"))(agent, "Weather in Paris?", api=api)


def shape(run: Any) -> list[tuple[Any, ...]]:
    """The trajectory without its call ids (each API makes up its own)."""
    return [tuple(v for k, v in item.items() if k != "call_id") for item in run.trajectory["items"]]


def test_the_chat_path_records_replays_and_gives_the_same_trajectory(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """llama.cpp's server has no Responses API: an agent run over Chat Completions goes
    through the same cache, and its trajectory is the Responses path's, item for item."""
    server.reply(answer_from_tool)
    server.reply_tool_call("get_weather", {"city": "Paris"}, until_tool_output=True)
    record = cached_client(server.base_url, tmp_path, "new")
    over_chat = run_on(record, "chat")
    over_responses = run_on(record, "responses")

    sent = [r.body for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(sent) == 2
    first, second = sent
    # the SDK's own chat request (an agent without a model gets the SDK's default
    # settings: reasoning effort and verbosity), nothing unset (store, stream, metadata...)
    assert sorted(first) == ["messages", "model", "reasoning_effort", "tools", "verbosity"]
    assert first["messages"] == [
        {"role": "system", "content": "Answer with the tool."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    # the tool-calling assistant message has text "", not null: llama.cpp's server answers
    # null with HTTP 500 (llama-cpp-python 0.3.36), OpenAI's API takes both
    assert second["messages"][2]["content"] == ""
    assert second["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    if openapi.spec_available():
        for body in sent:
            openapi.validate_request("/chat/completions", body)
    assert over_chat.api == "chat"
    assert over_chat.final_output == "It is sunny in Paris."
    assert over_chat.trajectory["turns"] == 2
    assert shape(over_chat) == shape(over_responses)
    # a conversation goes on from a run's items (the docs' follow-up example)
    agent = Agent(name="forecaster", instructions="Answer with the tool.", tools=[get_weather])
    follow_up = [*over_chat.result.to_input_list(), {"role": "user", "content": "Tomorrow?"}]
    second = AgentRunner(BoundModel(record, "gpt-4.1-mini"))(agent, follow_up, api="chat")
    assert (second.trajectory["turns"], second.text) == (1, "It is sunny in Paris.")
    assert graders.max_tool_calls(0).grade(second).passed
    # a run grades like a completion: its text and its trajectory
    assert graders.tool_called("get_weather", {"city": "Paris"}).grade(over_chat).passed
    assert graders.contains_all(["sunny"]).grade(over_chat).passed
    completion = as_completion(over_chat)
    assert (completion.api, completion.text) == ("chat", "It is sunny in Paris.")
    assert completion.tool_calls[0]["function"]["name"] == "get_weather"

    # --eval-record none: the same run from the recordings alone
    before = len(server.requests)
    replay = cached_client("http://127.0.0.1:9", tmp_path, "none")  # nothing listens there
    replayed = run_on(replay, "chat")
    assert len(server.requests) == before
    assert all(c.cached for c in replayed.calls)
    assert replayed.trajectory == over_chat.trajectory


def test_an_unknown_agent_api_is_refused() -> None:
    client = ModelClient(base_url="http://127.0.0.1:9", timeout=5.0, max_retries=0)
    with pytest.raises(ValueError, match="api must be one of responses, chat, got 'chat2'"):
        LayerProvider(client, "gpt-4.1-mini", api="chat2")
    runner = AgentRunner(BoundModel(client, "gpt-4.1-mini"))
    with pytest.raises(ValueError, match="api must be one of responses, chat, got 'chat2'"):
        runner(Agent(name="a"), "hi", api="chat2")
