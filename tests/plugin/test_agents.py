"""The run_agent fixture: an Agents SDK agent run on the eval's model inside pytest, its
calls counted on the case, recorded, then replayed with no server and no key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.agent_turns import answer_from_tool

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


AGENT_SUITE = """
import pytest
from agents import Agent, function_tool

@function_tool
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"

# the agent names its own model: the eval's model replaces it
forecaster = Agent(
    name="forecaster", instructions="Answer with the tool.", model="gpt-5-pro",
    tools=[get_weather],
)

@pytest.mark.eval(dataset="data/cities.jsonl")
def test_forecast(run_agent, case):
    run = run_agent(forecaster, f"Weather in {case['city']}?")
    assert run.final_output == f"It is sunny in {case['city']}."
    names = [(i["kind"], i["name"]) for i in run.trajectory["items"]]
    assert names == [("tool_call", "get_weather"), ("tool_output", None), ("message", None)]
    assert run.trajectory["turns"] == 2
"""


def replay_offline(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> list[dict[str, Any]]:
    """Run the project again with --eval-record none, no key and no server (one case,
    passing); the case records it wrote."""
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    server.reset()
    project.run(*mode, "--eval-record", "none").assert_outcomes(passed=1)
    assert server.requests == []
    return project.cases()


def test_run_agent_records_then_replays_offline(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    server.reply(answer_from_tool)
    server.reply_tool_call("get_weather", {"city": "Paris"}, until_tool_output=True)
    project.dataset("data/cities.jsonl", [{"id": "paris", "city": "Paris"}])
    project.test(AGENT_SUITE)

    project.run(*mode).assert_outcomes(passed=1)
    sent = [r.body for r in server.requests if r.path == "/v1/responses"]
    assert [body["model"] for body in sent] == ["gpt-4.1-mini", "gpt-4.1-mini"]
    (case,) = project.cases()
    assert case["calls"] == 2
    assert case["output"] == "It is sunny in Paris."
    assert case["usage"]["prompt_tokens"] > 0

    (replayed,) = replay_offline(project, server, monkeypatch, mode)
    assert (replayed["calls"], replayed["output"]) == (2, "It is sunny in Paris.")


AGENT_MODULE = """
from agents import Agent, function_tool

@function_tool
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"

forecaster = Agent(name="forecaster", instructions="Use the tool.", tools=[get_weather])
"""


def test_an_agent_eval_runs_the_agent_on_each_case(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.reply(answer_from_tool)
    server.reply_tool_call("get_weather", {"city": "Paris"}, until_tool_output=True)
    project.file("weather_agent.py", AGENT_MODULE)
    project.dataset(
        "data/q.jsonl",
        [
            {"id": "a", "input": "Weather in Paris?", "want": "sunny in Paris"},
            {"id": "b", "input": "And in Paris today?", "want": "rain"},
        ],
    )
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(
            agent="weather_agent:forecaster",
            dataset="data/q.jsonl",
            graders=[graders.string_check("{{ item.want }}", operation="ilike")],
        )
        def test_forecast(completion):
            assert completion.tool_calls[0]["function"]["name"] == "get_weather"
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1, failed=1)
    cases = {c["case_id"]: c for c in project.cases()}
    assert {k: (c["status"], c["calls"], c["output"]) for k, c in cases.items()} == {
        "a": ("passed", 2, "It is sunny in Paris."),
        "b": ("failed", 2, "It is sunny in Paris."),
    }


def test_an_agent_eval_over_chat_completions_records_then_replays_offline(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    """agent_api="chat": the agent's turns go to /chat/completions (llama.cpp's server, as
    `modelopt serve-local` runs it, has no Responses API), recorded, then replayed."""
    server.reply(answer_from_tool)
    server.reply_tool_call("get_weather", {"city": "Paris"}, until_tool_output=True)
    project.file("weather_agent.py", AGENT_MODULE)
    project.dataset("data/q.jsonl", [{"id": "a", "input": "Weather in Paris?"}])
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(
            agent="weather_agent:forecaster",
            agent_api="chat",
            dataset="data/q.jsonl",
            graders=[graders.tool_called("get_weather", {"city": "Paris"})],
        )
        def test_forecast(completion):
            assert completion.api == "chat"
            assert completion.text == "It is sunny in Paris."
        """
    )
    project.run(*mode).assert_outcomes(passed=1)
    assert [r.path for r in server.requests if r.method == "POST"] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]
    (case,) = project.cases()
    assert (case["calls"], case["output"]) == (2, "It is sunny in Paris.")
    # the trajectory grader read the run's tool call (its item, from the chat response)
    assert [(g["name"], g["passed"]) for g in case["grades"]] == [("tool_called:get_weather", True)]

    (replayed,) = replay_offline(project, server, monkeypatch, mode)
    assert (replayed["calls"], replayed["output"], replayed["grades"]) == (
        2,
        case["output"],
        case["grades"],
    )
