"""The plain-Python tool loop (``llm.run_tools``) against the fake server, on both APIs:
the tools run on the model's calls, their outputs go back, the run is a trajectory, and
every request body is one OpenAI takes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pydantic
import pytest

from pytest_modelopt.model.bound import BoundModel
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.tools import Tool, ToolError
from pytest_modelopt.records.trajectory import Trajectory
from tests.support import openapi

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI

APIS = ["responses", "chat"]
MODEL = "gpt-4.1-mini"


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id."""
    return {"order_id": order_id, "status": "shipped"}


async def refund_policy(days: int = 30) -> str:
    """The refund policy for returns within ``days`` days."""
    await asyncio.sleep(0)
    return f"refunds within {days} days"


def broken(order_id: str) -> str:
    """A tool with a bug."""
    raise KeyError(order_id)


class Order(pydantic.BaseModel):
    total: int


def parse_order(order_id: str) -> str:
    """A tool whose own pydantic use fails: its bug, not the model's arguments."""
    return repr(Order.model_validate({"total": order_id}))


def llm_for(server: FakeOpenAI, tmp_path: Path, record: str = "new") -> BoundModel:
    from pytest_modelopt.model.cache import ResponseCache

    cache = ResponseCache(tmp_path / "cache", record)  # type: ignore[arg-type]
    client = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0, cache=cache)
    return BoundModel(client, MODEL)


def answer_from_tool_output(body: dict[str, Any]) -> str:
    """The final answer: the tool outputs the request carries, as the model would say them."""
    items = body.get("input") or body.get("messages") or []
    outputs = [
        i.get("output") or i.get("content")
        for i in items
        if i.get("type") == "function_call_output" or i.get("role") == "tool"
    ]
    return "answer: " + " | ".join(map(str, outputs))


def check_bodies(server: FakeOpenAI) -> None:
    if not openapi.spec_available():
        pytest.skip("OpenAI's OpenAPI spec is not beside the project (../shared/data)")
    for request in server.requests:
        if request.path.endswith(("/responses", "/chat/completions")):
            openapi.validate_request(request.path, request.body)


@pytest.mark.parametrize("api", APIS)
def test_the_loop_runs_the_tools_and_returns_the_trajectory(
    server: FakeOpenAI, tmp_path: Path, api: str
) -> None:
    server.reply(answer_from_tool_output)
    server.reply_tool_call("lookup_order", {"order_id": "A1"}, until_tool_output=True)
    llm = llm_for(server, tmp_path)
    done = llm.run_tools("where is A1?", tools=[lookup_order, refund_policy], api=api)
    output = '{"order_id": "A1", "status": "shipped"}'
    assert done.text == f"answer: {output}"
    trajectory = Trajectory.model_validate(done.trajectory)  # the record's own format
    assert trajectory.turns == 2
    assert trajectory.final_output == done.text
    assert [(i.kind, i.name, i.arguments, i.output) for i in trajectory.items] == [
        ("tool_call", "lookup_order", {"order_id": "A1"}, None),
        ("tool_output", "lookup_order", None, output),
        ("message", None, None, None),
    ]
    assert trajectory.items[0].call_id == trajectory.items[1].call_id
    assert [c["function"]["name"] for c in done.tool_calls] == ["lookup_order"]
    posts = [r.body for r in server.requests if r.path.endswith(("/responses", "/completions"))]
    assert len(posts) == 2
    first_tools = posts[0]["tools"]
    names = [t["name"] if api == "responses" else t["function"]["name"] for t in first_tools]
    assert names == ["lookup_order", "refund_policy"]
    assert done.usage.prompt_tokens > 0
    assert done.cost is not None
    if api == "responses":
        assert all(body["store"] is False for body in posts)
    check_bodies(server)


@pytest.mark.parametrize("api", APIS)
def test_a_replayed_run_calls_the_tools_again(server: FakeOpenAI, tmp_path: Path, api: str) -> None:
    calls: list[str] = []

    def log_order(order_id: str) -> str:
        """Look up an order (and note that it ran)."""
        calls.append(order_id)
        return "shipped"

    server.reply(answer_from_tool_output)
    server.reply_tool_call("log_order", {"order_id": "B2"}, until_tool_output=True)
    first = llm_for(server, tmp_path).run_tools("B2?", tools=[log_order], api=api)
    sent = len(server.requests)
    replayed = llm_for(server, tmp_path, "none").run_tools("B2?", tools=[log_order], api=api)
    assert len(server.requests) == sent  # nothing sent
    assert calls == ["B2", "B2"]  # the tool ran on replay too
    assert replayed.cached
    assert not first.cached
    assert replayed.trajectory == first.trajectory
    assert replayed.text == first.text


@pytest.mark.parametrize("api", APIS)
def test_a_raising_tool_is_the_cases_error_unless_sent(
    server: FakeOpenAI, tmp_path: Path, api: str
) -> None:
    server.reply(answer_from_tool_output)
    server.reply_tool_call("broken", {"order_id": "C3"}, until_tool_output=True)
    llm = llm_for(server, tmp_path)
    with pytest.raises(ToolError, match=r"^tool 'broken' raised KeyError: 'C3' \(pass tool_e"):
        llm.run_tools("C3?", tools=[broken], api=api)
    sent = llm.run_tools("C3?", tools=[broken], api=api, tool_errors="send")
    assert sent.text == "answer: error: KeyError: 'C3'"
    output = sent.trajectory["items"][1] if sent.trajectory else {}
    assert output["kind"] == "tool_output"
    assert output["error"] == "KeyError: 'C3'"


@pytest.mark.parametrize("api", APIS)
def test_the_models_mistakes_go_back_to_it(server: FakeOpenAI, tmp_path: Path, api: str) -> None:
    server.reply(answer_from_tool_output)
    server.reply_tool_call("lookup_order", {"order": 7}, until_tool_output=True)
    done = llm_for(server, tmp_path).run_tools("?", tools=[lookup_order, refund_policy], api=api)
    assert done.text.startswith("answer: error: invalid arguments for lookup_order: [")
    assert "order_id" in done.text
    assert done.trajectory is not None
    server.reply_tool_call("cancel_order", {}, until_tool_output=True)
    done = llm_for(server, tmp_path).run_tools("?", tools=[lookup_order], api=api)
    assert done.text == ("answer: error: no tool named 'cancel_order'; the tools are: lookup_order")


def test_a_validation_error_inside_the_tool_is_the_tools_error(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.reply(answer_from_tool_output)
    server.reply_tool_call("parse_order", {"order_id": "A1"}, until_tool_output=True)
    llm = llm_for(server, tmp_path)
    with pytest.raises(ToolError, match=r"^tool 'parse_order' raised ValidationError"):
        llm.run_tools("A1?", tools=[parse_order])


@pytest.mark.parametrize("api", APIS)
def test_max_turns_ends_the_run_with_no_final_output(
    server: FakeOpenAI, tmp_path: Path, api: str
) -> None:
    server.reply_tool_call("lookup_order", {"order_id": "A1"})  # never stops calling
    done = llm_for(server, tmp_path).run_tools(
        "?", tools=[lookup_order], api=api, max_turns=3, temperature=0
    )
    assert done.trajectory is not None
    assert done.trajectory["turns"] == 3
    assert done.trajectory["final_output"] is None
    assert done.text == ""
    assert [i["kind"] for i in done.trajectory["items"]] == ["tool_call", "tool_output"] * 3
    posts = [r.body for r in server.requests if "messages" in r.body or "input" in r.body]
    assert all(body["temperature"] == 0 for body in posts)  # params go into every request
    check_bodies(server)


def test_the_async_loop_and_reasoning_items(server: FakeOpenAI, tmp_path: Path) -> None:
    server.answer_details(reasoning_tokens=5, cached_tokens=1)
    server.reply(answer_from_tool_output)
    server.reply_tool_call("refund_policy", {"days": 14}, until_tool_output=True)
    llm = llm_for(server, tmp_path)
    done = asyncio.run(
        llm.arun_tools("refund?", tools=[refund_policy], reasoning={"effort": "low"})
    )
    assert done.text == "answer: refunds within 14 days"
    assert done.trajectory is not None
    kinds = [(i["kind"], i["content"]) for i in done.trajectory["items"]]
    assert kinds[0] == ("reasoning", "thought for 5 tokens")
    assert kinds.count(("reasoning", "thought for 5 tokens")) == 2  # one per turn
    assert done.reasoning == ["thought for 5 tokens"]  # the last answer's summaries
    assert done.usage.reasoning_tokens == 10
    assert done.usage.cached_tokens == 2
    # reasoning items without encrypted_content are not sent back (store is false)
    second = [r.body for r in server.requests if r.path.endswith("/responses")][1]
    assert [i.get("type") for i in second["input"]] == [
        None,
        "function_call",
        "function_call_output",
    ]
    check_bodies(server)


def test_tool_schemas_come_from_the_signature() -> None:
    tool = Tool.of(refund_policy)
    assert tool.schema("responses") == {
        "type": "function",
        "name": "refund_policy",
        "description": "The refund policy for returns within ``days`` days.",
        "parameters": {
            "type": "object",
            "properties": {"days": {"default": 30, "title": "Days", "type": "integer"}},
            "additionalProperties": False,
        },
        "strict": False,
    }
    assert tool.schema("chat")["function"]["name"] == "refund_policy"
    with pytest.raises(TypeError, match="a tool must be a named function"):
        Tool.of(lambda: None)


def test_two_tools_of_one_name_are_refused(server: FakeOpenAI, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="two tools are named 'lookup_order'"):
        llm_for(server, tmp_path).run_tools("?", tools=[lookup_order, lookup_order])
    assert server.requests == []  # refused before any call


def test_the_sync_loop_inside_a_running_loop_says_to_await(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    llm = llm_for(server, tmp_path)

    async def inside() -> None:
        llm.run_tools("?", tools=[lookup_order])

    with pytest.raises(RuntimeError, match=r"use `await llm.arun_tools\(...\)` there"):
        asyncio.run(inside())
