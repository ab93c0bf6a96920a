"""Function tools in declared prompts: sent as written, calls read back, for both APIs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

PARAMETERS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
# each API's own shape of a function tool and of a forced choice (openai-openapi.yaml:
# chat's ChatCompletionTool nests the function; the Responses API's FunctionTool does not)
SHAPES: dict[str, dict[str, Any]] = {
    "chat": {
        "tools": [
            {"type": "function", "function": {"name": "lookup_order", "parameters": PARAMETERS}}
        ],
        "tool_choice": "auto",
        "endpoint": "/v1/chat/completions",
    },
    "responses": {
        "tools": [
            {"type": "function", "name": "lookup_order", "strict": True, "parameters": PARAMETERS}
        ],
        "tool_choice": "auto",
        "reasoning": {"effort": "low"},
        "endpoint": "/v1/responses",
    },
}

SUITE = """
import pytest

@pytest.mark.eval(prompt="p.yaml", dataset="d.jsonl")
def test_tools(completion, case):
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in completion.tool_calls] == [
        tuple(call) for call in case["calls"]
    ]
    assert completion.text == case["text"]
"""


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_tool_calls_round_trip(
    project: Project, server: FakeOpenAI, mode: list[str], api: str
) -> None:
    shape = dict(SHAPES[api])
    endpoint = shape.pop("endpoint")
    server.reply_tool_call("lookup_order", {"order_id": "A1"}, contains="order A1")
    rows = [
        {
            "id": "tool",
            "q": "where is order A1",
            "calls": [["lookup_order", '{"order_id": "A1"}']],
            "text": "",
        },
        {"id": "text", "q": "hello", "calls": [], "text": "hello"},
    ]
    project.dataset("d.jsonl", rows)
    params = "".join(f"{key}: {json.dumps(value)}\n" for key, value in shape.items())
    project.file(
        "p.yaml",
        f"api: {api}\nmessages:\n  - role: user\n    content: '{{{{ q }}}}'\n{params}",
    )
    project.test(SUITE)
    project.run(*mode).assert_outcomes(passed=2)
    posts = [r.body for r in server.requests if r.path == endpoint]
    assert len(posts) == 2
    for body in posts:
        # sent as the prompt file wrote them: nothing added, nothing translated
        assert {key: body[key] for key in shape} == shape
