"""``agent=`` eval cases: run concurrently ahead of their tests (serial runs), each case's
trajectory in the run file, graded by marker graders and judges, and every way a run can
go wrong recorded on its own case."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


AGENT_MODULE = """
from agents import Agent, function_tool

@function_tool
def lookup_order(order_id: str) -> str:
    \"\"\"The order's status.\"\"\"
    if order_id == "BAD":
        raise ValueError(f"no order {order_id}")
    return f"order {order_id}: shipped"

support = Agent(name="support", instructions="Look the order up.", tools=[lookup_order])
"""

SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(
    agent="support_agent:support",
    dataset="data/q.jsonl",
    graders=[graders.tool_called("lookup_order"), graders.max_turns(2), "looked_up"],
)
def test_support(completion, case):
    assert case["order"] in completion.text
"""


def answer_from_tool(body: dict[str, Any]) -> str:
    outputs = [i["output"] for i in body["input"] if i.get("type") == "function_call_output"]
    return f"Your {outputs[-1]}." if outputs else "How can I help?"


def agent_project(project: Project, server: FakeOpenAI, orders: list[str]) -> None:
    """One case per order: the model calls ``lookup_order(order)``, then answers from it."""
    server.reply(answer_from_tool)
    for order in orders:
        server.reply_tool_call(
            "lookup_order", {"order_id": order}, contains=f"order {order}?", until_tool_output=True
        )
    project.file("support_agent.py", AGENT_MODULE)
    project.file(  # a grader from the configuration grades the trajectory too
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]
        judge_model = "judge-1"

        [tool.modelopt.graders.looked_up]
        type = "tool_called"
        tool = "lookup_order"
        times = 1
        """,
    )
    rows = [{"id": order, "input": f"Where is order {order}?", "order": order} for order in orders]
    project.dataset("data/q.jsonl", rows)


def comparable(cases: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must be the same across runs and modes (not timings, not call ids)."""

    def items(case: dict[str, Any]) -> list[tuple[Any, ...]]:
        run = case["trajectory"] or {"items": []}
        return [(i["kind"], i["name"], i["arguments"], i["output"]) for i in run["items"]]

    return [
        (
            c["case_id"],
            c["status"],
            c["output"],
            c["calls"],
            [(g["name"], g["passed"]) for g in c["grades"]],
            items(c),
        )
        for c in cases
    ]


def test_agent_cases_record_then_replay_offline(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    orders = ["A1", "B2", "C3", "D4"]
    agent_project(project, server, orders)
    project.test(SUITE)
    server.latency = 0.3

    result = project.run(*mode)
    result.assert_outcomes(passed=4)
    if "no:xdist" in mode:  # serial: the cases ran ahead of the tests, at once
        result.stdout.fnmatch_lines(["*running 4 agent cases ahead of the tests*"])
        assert server.max_in_flight == 4
    assert len([r for r in server.requests if r.path == "/v1/responses"]) == 8
    cases = project.cases()
    for case in cases:
        order = case["case_id"]
        assert case["output"] == f"Your order {order}: shipped."
        assert [(g["name"], g["passed"]) for g in case["grades"]] == [
            ("tool_called:lookup_order", True),
            ("max_turns", True),
            ("looked_up", True),
        ]
        run = case["trajectory"]
        assert run["turns"] == 2
        assert run["final_output"] == f"Your order {order}: shipped."
        call, output, message = run["items"]
        assert (call["kind"], call["name"], call["arguments"]) == (
            "tool_call",
            "lookup_order",
            {"order_id": order},
        )
        assert (output["kind"], output["output"], output["call_id"]) == (
            "tool_output",
            f"order {order}: shipped",
            call["call_id"],
        )
        assert (message["kind"], message["content"]) == ("message", case["output"])
    recorded = comparable(cases)

    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    server.reset()
    project.run(*mode, "--eval-record", "none").assert_outcomes(passed=4)
    assert server.requests == []
    assert comparable(project.cases()) == recorded


def test_an_agent_eval_compares_and_gates_like_any_eval(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    # the candidate model never calls the tool: the trajectory graders fail every case,
    # and the one verdict policy calls it a regression against the baseline model
    orders = [f"O{n}" for n in range(12)]
    agent_project(project, server, orders)
    server.reply("I cannot look orders up.", model="cheap-model")
    project.test(SUITE.replace('assert case["order"] in completion.text', "pass"))
    result = project.run(
        *mode, "--eval-models", "gpt-4.1-mini,cheap-model", "--eval-baseline-model", "gpt-4.1-mini"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["test_suite::test_support * gpt-4.1-mini -> cheap-model * 12 * 100.0% -> 0.0%*REGRESSED*"]
    )
    cheap = [c for c in project.cases() if c["model"] == "cheap-model"]
    assert len(cheap) == 12
    assert all(c["trajectory"]["items"][0]["kind"] == "message" for c in cheap)
    assert {
        (g["name"], g["passed"]) for c in cheap for g in c["grades"] if g["name"] != "max_turns"
    } == {("tool_called:lookup_order", False), ("looked_up", False)}


def test_two_workers_give_what_a_serial_run_gives(project: Project, server: FakeOpenAI) -> None:
    agent_project(project, server, ["A1", "B2", "C3", "D4", "BAD"])
    project.test(SUITE)
    project.run("-p", "no:xdist").assert_outcomes(passed=4, errors=1)
    serial = comparable(project.cases())
    (project.path / ".modelopt" / "cache").rename(project.path / "serial-cache")

    project.run("-n", "2").assert_outcomes(passed=4, errors=1)
    assert comparable(project.cases()) == serial
    assert len([r for r in server.requests if r.path == "/v1/responses"]) == 2 * 10


def test_a_tool_that_raises_is_an_error_on_its_case(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    agent_project(project, server, ["A1", "BAD"])
    project.test(SUITE)
    result = project.run(*mode)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*[[]BAD[]]: tool: tool 'lookup_order' raised ValueError*"])
    cases = {c["case_id"]: c for c in project.cases()}
    assert cases["A1"]["status"] == "passed"
    bad = cases["BAD"]
    assert bad["status"] == "error"
    assert bad["error"]["kind"] == "tool"
    assert "tool 'lookup_order' raised ValueError: no order BAD" in bad["error"]["message"]
    # the model was told (the SDK's message) and answered; the record keeps all of it
    assert bad["calls"] == 2
    call, output, _message = bad["trajectory"]["items"]
    assert (call["name"], output["error"]) == ("lookup_order", "ValueError: no order BAD")
    told = [
        item["output"]
        for r in server.requests
        if r.path == "/v1/responses" and "BAD" in json.dumps(r.body)
        for item in r.body["input"]
        if item.get("type") == "function_call_output"
    ]
    assert len(told) == 1
    assert "error" in told[0].lower()
    shown = project.modelopt("show", "--failed").stdout
    assert (
        """trajectory: 2 model calls; lookup_order({"order_id": "BAD"}) raised ValueError"""
        in shown
    )


def test_max_turns_fails_the_case_and_keeps_its_trajectory(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.file("support_agent.py", AGENT_MODULE)
    project.dataset("data/q.jsonl", [{"id": "loop", "input": "Where is order A1?", "order": "A1"}])
    server.reply_tool_call("lookup_order", {"order_id": "A1"})  # every turn: never answers
    project.test(
        """
        import pytest

        @pytest.mark.eval(agent="support_agent:support", dataset="data/q.jsonl")
        def test_support(completion):
            pass
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(failed=1)
    (case,) = project.cases()
    assert case["status"] == "failed"
    assert case["calls"] == 10  # the SDK's default max_turns
    (grade,) = [g for g in case["grades"] if g["name"] == "agent_run"]
    assert not grade["passed"]
    assert grade["reason"].startswith("MaxTurnsExceeded")
    kinds = [item["kind"] for item in case["trajectory"]["items"]]
    assert kinds.count("tool_call") == 10
    assert case["trajectory"]["final_output"] is None


def test_runs_that_cannot_start_are_errors_that_say_what_to_do(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    agent_project(project, server, ["A1"])
    project.file(
        "bad_graph.py",
        """
        from agents import Agent, OpenAIResponsesModel
        from openai import AsyncOpenAI

        fixed = Agent(name="fixed", model=OpenAIResponsesModel("x", AsyncOpenAI(api_key="k")))
        """,
    )
    project.test(
        """
        import pytest

        @pytest.mark.eval(agent="no_such_module:support", dataset="data/q.jsonl")
        def test_missing(completion):
            pass

        @pytest.mark.eval(agent="bad_graph:fixed", dataset="data/q.jsonl")
        def test_graph(completion):
            pass

        @pytest.mark.eval(agent="support_agent:support", dataset="data/q.jsonl")
        def test_server_down(completion):
            pass
        """
    )
    server.fault("500", times=None)
    result = project.run(*mode, "--eval-max-retries", "0")
    result.assert_outcomes(errors=3)
    errors = {c["eval"].split("::")[-1]: c["error"] for c in project.cases()}
    assert errors["test_missing"]["kind"] == "agent"
    assert "cannot import 'no_such_module'" in errors["test_missing"]["message"]
    assert errors["test_graph"]["kind"] == "agent"
    assert "give the agent a model name" in errors["test_graph"]["message"]
    assert errors["test_server_down"]["kind"] not in ("agent", "exception")


def test_run_agent_in_the_body_records_its_trajectory_and_judges_see_it(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    agent_project(project, server, ["A1"])
    server.reply('{"explanation": "", "label": "good"}', model="judge-1")
    project.test(
        """
        import pytest
        from pytest_modelopt import graders
        from support_agent import support

        JUDGE = graders.label_model(
            "Did the agent look the order up? {{ sample.trajectory }}",
            labels=["good", "bad"], passing_labels=["good"],
        )

        @pytest.mark.eval(dataset="data/q.jsonl")
        def test_support(run_agent, case, grade):
            run_agent(support, "Hello")  # a first run, not graded: the last run is kept
            run = run_agent(support, case["input"])
            grade(run.final_output, graders.contains_any(["shipped"]))
            grade(run.completion, JUDGE)
        """
    )
    project.run(*mode).assert_outcomes(passed=1)
    (case,) = project.cases()
    assert [i["kind"] for i in case["trajectory"]["items"]] == [
        "tool_call",
        "tool_output",
        "message",
    ]
    (judged,) = [r.body for r in server.requests if r.body.get("model") == "judge-1"]
    # the judge's prompt holds the run as JSON (not a Python repr), as the record has it
    shown = json.dumps(case["trajectory"], ensure_ascii=False)
    assert any(shown in text for text in strings(judged)), judged


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_a_graded_tool_loop_run_is_the_cases_trajectory(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    agent_project(project, server, ["A1"])
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        def lookup_order(order_id: str) -> str:
            \"\"\"The order's status.\"\"\"
            return f"order {order_id}: shipped"

        @pytest.mark.eval(dataset="data/q.jsonl")
        def test_loop(llm, case, grade):
            done = llm.run_tools(case["input"], tools=[lookup_order])
            grade(done, graders.tool_called("lookup_order"))
        """
    )
    project.run(*mode).assert_outcomes(passed=1)
    (case,) = project.cases()
    run = case["trajectory"]
    call, output = run["items"][:2]
    assert (call["kind"], call["name"], call["arguments"]) == (
        "tool_call",
        "lookup_order",
        {"order_id": "A1"},
    )
    assert (output["kind"], output["output"]) == ("tool_output", "order A1: shipped")
    assert run["final_output"] == "Your order A1: shipped."
