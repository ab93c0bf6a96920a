"""Declared prompts with tools on either API from one file, the marker's params and sweeps,
incomplete answers, and the tool loop (``llm.run_tools``) under record and replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support import openapi

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

ENDPOINTS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}

# chat's shapes, in a prompt file that either API serves
PROMPT = """
api: {api}
max_tokens: 64
tools:
  - type: function
    function:
      name: lookup_order
      description: Find an order
      parameters:
        type: object
        properties: {{order_id: {{type: string}}}}
        required: [order_id]
tool_choice: {{type: function, function: {{name: lookup_order}}}}
messages:
  - role: user
    content: '{{{{ q }}}}'
"""


def valid(server: FakeOpenAI, endpoint: str) -> list[dict[str, object]]:
    bodies = [r.body for r in server.requests if r.path == endpoint]
    if openapi.spec_available():
        for body in bodies:
            openapi.validate_request(endpoint, body)
    return bodies


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_one_prompt_file_declares_tools_for_either_api(
    project: Project, server: FakeOpenAI, mode: list[str], api: str
) -> None:
    server.reply_tool_call("lookup_order", {"order_id": "A1"}, contains="A1")
    project.dataset("d.jsonl", [{"id": "a1", "q": "where is A1"}, {"id": "b2", "q": "hi B2"}])
    project.file("p.yaml", PROMPT.format(api=api))
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.yaml", dataset="d.jsonl", params={"temperature": 0})
        def test_tools(completion, case):
            names = [c["function"]["name"] for c in completion.tool_calls]
            assert names == (["lookup_order"] if case["id"] == "a1" else [])
        """
    )
    project.run(*mode).assert_outcomes(passed=2)
    bodies = valid(server, ENDPOINTS[api])
    assert len(bodies) == 2
    for body in bodies:
        assert body["temperature"] == 0  # the marker's params over the file's
        if api == "responses":
            assert body["tools"] == [
                {
                    "type": "function",
                    "name": "lookup_order",
                    "description": "Find an order",
                    "parameters": {
                        "type": "object",
                        "properties": {"order_id": {"type": "string"}},
                        "required": ["order_id"],
                    },
                    "strict": False,
                }
            ]
            assert body["tool_choice"] == {"type": "function", "name": "lookup_order"}
            assert body["max_output_tokens"] == 64
            assert body["store"] is False  # the Responses API would keep it otherwise
        else:
            assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup_order"}}
            assert body["max_tokens"] == 64  # chat has it: as written
            assert "store" not in body


def test_a_sweep_is_one_result_per_value(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    formats = [{"type": "text"}, {"type": "json_schema", "name": "answer", "schema": schema}]
    project.dataset("d.jsonl", [{"id": "x", "q": "one"}, {"id": "y", "q": "two"}])
    project.file(
        "p.yaml",
        "api: responses\nreasoning: {summary: auto}\n"
        "messages:\n  - {role: user, content: '{{ q }}'}\n",
    )
    project.test(
        f"""
        import pytest

        @pytest.mark.eval(
            prompt="p.yaml",
            dataset="d.jsonl",
            sweep={{"reasoning.effort": ["low", "high"], "text.format": {formats!r}}},
        )
        def test_swept(completion):
            assert completion.text
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=8)
    variants = [
        "reasoning.effort=low,text.format=text#0",
        "reasoning.effort=low,text.format=answer#1",
        "reasoning.effort=high,text.format=text#0",
        "reasoning.effort=high,text.format=answer#1",
    ]
    rows = {row["eval"]: row for row in project.summary()["evals"]}
    assert sorted(rows) == sorted(f"test_suite::test_swept[{v}]" for v in variants)
    assert all(row["cases"] == 2 for row in rows.values())
    bodies = valid(server, "/v1/responses")
    sent = sorted(
        (b["reasoning"]["effort"], b["text"]["format"]["type"], b["input"][0]["content"])
        for b in bodies
    )
    assert sent == sorted(
        (effort, kind, q)
        for effort in ("low", "high")
        for kind in ("text", "json_schema")
        for q in ("one", "two")
    )
    assert all(b["reasoning"]["summary"] == "auto" for b in bodies)  # the file's, kept
    assert (
        "test_swept[gpt-4.1-mini-reasoning.effort=low,text.format=text#0-x]" in result.stdout.str()
    )


def test_a_bad_sweep_or_param_is_refused_at_collection(project: Project) -> None:
    project.file("p.yaml", "api: chat\nmessages:\n  - {role: user, content: hi}\n")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.yaml", sweep={"truncation": ["auto"]})
        def test_bad():
            pass
        """
    )
    result = project.run("-p", "no:xdist")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*test_bad[[]truncation=auto[]] params: 'truncation' belong(s) to the Responses API*"]
    )


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_incomplete_answer_is_graded_and_noted(
    project: Project, server: FakeOpenAI, api: str
) -> None:
    server.answer_details(incomplete="max_output_tokens")
    project.file("p.yaml", f"api: {api}\nmessages:\n  - {{role: user, content: hello}}\n")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.yaml")
        def test_cut(completion):
            assert completion.text == "hello"
        """
    )
    project.run("-p", "no:xdist").assert_outcomes(passed=1)
    (case,) = project.cases()
    reason = "max_output_tokens" if api == "responses" else "length"
    assert case["status"] == "passed"
    assert case["note"] == f"the answer is incomplete ({reason}): graded as it came, cut short"


LOOP = """
import json
import pathlib

import pytest
from pytest_modelopt import graders

def lookup_order(order_id: str) -> dict:
    \"\"\"Look up an order by its id.\"\"\"
    with open("tool-runs.txt", "a") as log:  # proves the tool ran (on replay too)
        log.write(order_id + "\\n")
    return {{"order_id": order_id, "status": "shipped"}}

def refund_policy() -> str:
    \"\"\"The refund policy.\"\"\"
    return "30 days"

@pytest.mark.eval(dataset="d.jsonl")
def test_support(llm, case, grade):
    done = llm.run_tools(case["q"], tools=[lookup_order, refund_policy], api="{api}")
    grade(done, graders.tool_called("lookup_order", args={{"order_id": case["order"]}}))
    grade(done, graders.tool_not_called("refund_policy"))
    grade(done, graders.max_turns(2))
    assert done.trajectory["final_output"] == done.text
"""


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_the_tool_loop_records_and_replays_with_no_key(
    project: Project,
    server: FakeOpenAI,
    mode: list[str],
    api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.reply(lambda body: "your order is shipped")
    server.reply_tool_call(
        "lookup_order", {"order_id": "A1"}, contains="A1", until_tool_output=True
    )
    server.reply_tool_call(
        "lookup_order", {"order_id": "B9"}, contains="B2", until_tool_output=True
    )
    rows = [{"id": "a", "q": "where is A1", "order": "A1"}, {"id": "b", "q": "B2?", "order": "B2"}]
    project.dataset("d.jsonl", rows)
    project.test(LOOP.format(api=api))
    project.run(*mode).assert_outcomes(passed=1, failed=1)
    sent = len(server.requests)
    graded = {
        c["case_id"]: [(g["name"], g["passed"]) for g in c["grades"]] for c in project.cases()
    }
    assert graded["a"] == [
        ("tool_called:lookup_order", True),
        ("tool_not_called:refund_policy", True),
        ("max_turns", True),
    ]
    assert graded["b"][0] == ("tool_called:lookup_order", False)  # called with B9
    valid(server, ENDPOINTS[api])
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    project.run(*mode, "--eval-record", "none").assert_outcomes(passed=1, failed=1)
    assert len(server.requests) == sent
    runs = (project.path / "tool-runs.txt").read_text().split()
    assert sorted(runs) == ["A1", "A1", "B9", "B9"]  # the tools ran again on replay
    replayed = {
        c["case_id"]: [(g["name"], g["passed"]) for g in c["grades"]] for c in project.cases()
    }
    assert replayed == graded


def test_a_tool_that_raises_is_an_error_of_its_case(project: Project, server: FakeOpenAI) -> None:
    server.reply_tool_call("lookup_order", {"order_id": "Z9"}, until_tool_output=True)
    project.test(
        """
        import pytest

        def lookup_order(order_id: str) -> str:
            \"\"\"Look up an order.\"\"\"
            raise LookupError(order_id)

        @pytest.mark.eval(models=["gpt-4.1-mini"])
        def test_support(llm):
            llm.run_tools("where is Z9?", tools=[lookup_order])
        """
    )
    project.run("-p", "no:xdist").assert_outcomes(failed=1)
    (case,) = project.cases()
    assert case["status"] == "error"
    assert case["error"]["message"].startswith(
        "ToolError: tool 'lookup_order' raised LookupError: Z9 (pass tool_errors='send'"
    )
    assert case["calls"] == 1
    # the run up to the raise is the case's trajectory: what the model did, where it broke
    trajectory = case["trajectory"]
    assert [(i["kind"], i["name"]) for i in trajectory["items"]] == [
        ("tool_call", "lookup_order"),
        ("tool_output", "lookup_order"),
    ]
    assert trajectory["items"][0]["arguments"] == {"order_id": "Z9"}
    assert trajectory["items"][1]["error"] == "LookupError: Z9"
    assert (trajectory["turns"], trajectory["final_output"]) == (1, None)
