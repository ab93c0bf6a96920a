"""Two evals of the support agent (support/agent.py) on 44 customer messages: what it did
(its trajectory: which tool, with which arguments) and what it said (its final answer).

Each case runs the agent once per eval on the case's ``input``, over Chat Completions
(``agent_api="chat"``: the local model's server has no Responses API). The grades of a
case are listed per grader; a case passes when all of them pass.
"""

import pytest
from case import Case

from pytest_modelopt import graders

pytestmark = pytest.mark.eval(
    agent="support.agent:support", agent_api="chat", dataset="data/cases.jsonl", schema=Case
)


@pytest.mark.eval(threshold=0.1)
def test_tool_use(completion, case, grade):
    """The tool the message needs, with the right arguments and nothing else; no tool for
    a message that needs none."""
    if case["tool"] == "none":
        grade(completion, graders.max_tool_calls(0), name="no_tool")
        return
    grade(completion, graders.tool_called(case["tool"]), name="right_tool")
    expected = {"name": case["tool"]}
    if case["args"] is not None:
        expected["arguments"] = case["args"]
    # only that call: a failure scores partial credit (F1 over calls)
    grade(completion, graders.trajectory([expected], order="exact"), name="exact_calls")


@pytest.mark.eval(threshold=0.1)
def test_answer(completion, case, grade):
    """The final answer says what the tool found (the order's status and date, the
    policy's terms), in at most three model calls."""
    if case["facts"]:
        grade(completion, graders.contains_all(case["facts"]), name="facts")
    else:
        grade(completion, graders.length(min_words=1), name="answered")
    grade(completion, graders.max_turns(3), name="turns")
