"""Trajectory graders on hand-built trajectories whose answers are known, and their round
trip through OpenAI's JSON (an exported grader scores as the local one does)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders import Grader, GraderError
from pytest_modelopt.model.types import Completion
from pytest_modelopt.records.trajectory import Item, Trajectory
from tests.support import openapi


def call(name: str, arguments: Any = None, call_id: str = "") -> dict[str, Any]:
    return {"kind": "tool_call", "name": name, "arguments": arguments, "call_id": call_id or name}


def sample(*items: dict[str, Any], turns: int = 1) -> dict[str, Any]:
    """A sample as graders see it: OpenAI's namespace plus the agent's trajectory."""
    trajectory = {"items": list(items), "turns": turns, "final_output": "done"}
    Trajectory.model_validate(trajectory)  # the agreed format, or the test is wrong
    return {"output_text": "done", "trajectory": trajectory}


WEATHER = sample(
    {"kind": "message", "role": "user", "content": "Weather in Paris, then book a table"},
    call("get_weather", {"city": "Paris", "units": {"temp": "C", "wind": "kmh"}}),
    {"kind": "tool_output", "call_id": "get_weather", "output": "18C"},
    call("search", {"q": "bistro"}, "s1"),
    call("search", {"q": "cafe"}, "s2"),
    call("book", '{"place": "cafe", "people": 2}'),  # raw JSON string arguments
    {"kind": "message", "role": "assistant", "content": "Booked."},
    turns=4,
)
EMPTY = sample(turns=1)


def verdict(grader: Grader, s: dict[str, Any]) -> tuple[float, bool]:
    grade = grader.grade(s, {})
    return round(grade.score, 4), grade.passed


def test_tool_called_by_name_times_and_arguments() -> None:
    assert verdict(graders.tool_called("get_weather"), WEATHER) == (1.0, True)
    assert verdict(graders.tool_called("cancel"), WEATHER) == (0.0, False)
    # repeated calls: "search" twice
    assert verdict(graders.tool_called("search", times=2), WEATHER) == (1.0, True)
    assert verdict(graders.tool_called("search", times=1), WEATHER) == (0.0, False)
    assert verdict(graders.tool_called("search", {"q": "cafe"}, times=1), WEATHER) == (1.0, True)
    assert verdict(graders.tool_called("cancel", times=0), WEATHER) == (1.0, True)
    grade = graders.tool_called("search", times=1).grade(WEATHER, {})
    assert grade.reason.startswith("'search' called 2 time(s), wanted exactly 1 time;")
    assert grade.name == "tool_called:search"


def test_arguments_subset_exact_and_nested() -> None:
    weather = {"city": "Paris", "units": {"temp": "C", "wind": "kmh"}}
    subset = graders.tool_called("get_weather", {"units": {"temp": "C"}})
    assert verdict(subset, WEATHER) == (1.0, True)
    # a nested object must match in full under exact
    nested_exact = graders.tool_called(
        "get_weather", {"city": "Paris", "units": {"temp": "C"}}, match="exact"
    )
    assert verdict(nested_exact, WEATHER) == (0.0, False)
    assert verdict(graders.tool_called("get_weather", weather, match="exact"), WEATHER) == (
        1.0,
        True,
    )
    assert verdict(graders.tool_called("get_weather", {"units": {"temp": "F"}}), WEATHER) == (
        0.0,
        False,
    )
    # raw-string arguments that parse are compared as JSON
    assert verdict(graders.tool_called("book", {"people": 2}), WEATHER) == (1.0, True)
    # True is not 1; 2.0 is 2
    assert verdict(graders.tool_called("book", {"people": True}), WEATHER) == (0.0, False)
    assert verdict(graders.tool_called("book", {"people": 2.0}), WEATHER) == (1.0, True)
    grade = nested_exact.grade(WEATHER, {})
    assert "never matched" in grade.reason
    assert '"wind": "kmh"' in grade.reason


def test_lists_in_arguments_compare_element_by_element() -> None:
    s = sample(call("tag", {"tags": [{"id": 1, "x": 0}, {"id": 2}]}))
    assert verdict(graders.tool_called("tag", {"tags": [{"id": 1}, {"id": 2}]}), s) == (1.0, True)
    assert verdict(graders.tool_called("tag", {"tags": [{"id": 1}]}), s) == (0.0, False)
    assert verdict(graders.tool_called("tag", {"tags": [{"id": 2}, {"id": 1}]}), s) == (0.0, False)


def test_tool_not_called_and_budgets() -> None:
    assert verdict(graders.tool_not_called("delete_account"), WEATHER) == (1.0, True)
    failed = graders.tool_not_called("search").grade(WEATHER, {})
    assert (failed.passed, failed.reason) == (
        False,
        """'search' called 2 time(s): search({"q": "bistro"}), search({"q": "cafe"})""",
    )
    assert verdict(graders.max_tool_calls(4), WEATHER) == (1.0, True)
    assert graders.max_tool_calls(3).grade(WEATHER, {}).reason == "4 tool calls > 3"
    assert verdict(graders.max_turns(4), WEATHER) == (1.0, True)
    assert graders.max_turns(3).grade(WEATHER, {}).reason == "4 turns > 3"


def test_trajectory_orders() -> None:
    names = ["get_weather", "search", "search", "book"]
    for order in ("exact", "in_order", "any_order"):
        assert verdict(graders.trajectory(names, order=order), WEATHER) == (1.0, True), order
    # in_order with extra calls: passes; exact does not (F1 of 2 of 2 expected, 4 made)
    sparse = ["get_weather", "book"]
    assert verdict(graders.trajectory(sparse, order="in_order"), WEATHER) == (1.0, True)
    assert verdict(graders.trajectory(sparse, order="exact"), WEATHER) == (round(2 / 3, 4), False)
    # out of order: any_order passes, in_order counts the longest in-order part (1 of 2)
    backwards = ["book", "get_weather"]
    assert verdict(graders.trajectory(backwards, order="any_order"), WEATHER) == (1.0, True)
    assert verdict(graders.trajectory(backwards, order="in_order"), WEATHER) == (
        round(2 * (1 / 4) * (1 / 2) / (1 / 4 + 1 / 2), 4),
        False,
    )
    # the same calls in another order fail exact, with partial credit
    swapped = sample(call("b"), call("a"))
    assert verdict(graders.trajectory(["a", "b"]), swapped) == (0.5, False)


def test_trajectory_repeated_calls_and_arguments() -> None:
    # two expected searches need two distinct calls
    three = ["search", "search", "search"]
    grade = graders.trajectory(three, order="any_order").grade(WEATHER, {})
    assert (round(grade.score, 4), grade.passed) == (
        round(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3), 4),
        False,
    )
    assert "2 of 3 expected calls matched" in grade.reason
    # arguments pick the call: matching must not give the cafe call to the first wish
    wanted = [{"name": "search"}, {"name": "search", "arguments": {"q": "bistro"}}]
    assert verdict(graders.trajectory(wanted, order="any_order"), WEATHER) == (1.0, True)
    exact_args = [{"name": "book", "arguments": {"place": "cafe"}}]
    assert verdict(graders.trajectory(exact_args, order="any_order"), WEATHER) == (1.0, True)
    strict = graders.trajectory(exact_args, order="any_order", match="exact")
    assert verdict(strict, WEATHER) == (0.0, False)


def test_empty_trajectory() -> None:
    assert verdict(graders.trajectory([]), EMPTY) == (1.0, True)
    assert verdict(graders.trajectory(["search"]), EMPTY) == (0.0, False)
    assert verdict(graders.trajectory([], order="exact"), WEATHER) == (0.0, False)
    assert verdict(graders.trajectory([], order="in_order"), WEATHER) == (1.0, True)
    assert verdict(graders.tool_called("search"), EMPTY) == (0.0, False)
    assert graders.tool_called("search").grade(EMPTY, {}).reason.endswith("calls: no tool calls")
    assert verdict(graders.tool_not_called("search"), EMPTY) == (1.0, True)
    assert verdict(graders.max_tool_calls(0), EMPTY) == (1.0, True)


TRAJECTORY_GRADERS: list[Grader] = [
    graders.tool_called("get_weather", {"units": {"temp": "C"}}),
    graders.tool_called("search", times=2, match="exact", grader_name="two_searches"),
    graders.tool_not_called("delete_account"),
    graders.trajectory(
        ["get_weather", {"name": "book", "arguments": {"people": 2}}], order="in_order"
    ),
    graders.trajectory(["book", "search", "cancel"], order="any_order", name="any"),
    graders.max_turns(3),
    graders.max_tool_calls(10),
]


@pytest.mark.parametrize("grader", TRAJECTORY_GRADERS, ids=lambda g: g.label)
def test_round_trip_and_the_exported_grader_scores_alike(grader: Grader) -> None:
    from pytest_modelopt.graders.engines.python_source import run_grade

    data = grader.to_openai()
    assert data["type"] == "python"
    assert json.loads(json.dumps(data)) == data
    rebuilt = graders.from_openai(data)
    assert rebuilt == grader
    assert rebuilt.to_openai() == data
    if openapi.spec_available():
        openapi.validate_response("GraderPython", data)
    local = grader.grade(WEATHER, {})
    assert run_grade(data["source"], WEATHER, {}) == pytest.approx(local.score)
    # the exported score is 1 exactly when the local grader passes
    assert (local.score == 1.0) == local.passed


def test_no_trajectory_is_an_error_not_a_pass() -> None:
    completion = Completion(text="It is sunny.", model="m", api="chat")
    for grader in TRAJECTORY_GRADERS:
        for plain in (completion, "It is sunny.", {"output_text": "x"}):
            with pytest.raises(GraderError, match="the sample has no trajectory"):
                grader.grade(plain, {})


def test_a_trajectory_model_or_an_object_carrying_one_is_graded() -> None:
    model = Trajectory(items=[Item(kind="tool_call", name="search", arguments={"q": "x"})], turns=2)

    class Result:  # what an agent adapter returns: text and what the agent did
        text = "found"
        trajectory = model

    assert graders.tool_called("search", {"q": "x"}).grade(Result(), {}).passed
    assert graders.max_turns(1).grade({"output_text": "", "trajectory": model}, {}).reason == (
        "2 turns > 1"
    )


def test_config_json_and_bad_definitions() -> None:
    from_config = graders.from_openai(
        {"type": "tool_called", "tool": "search", "args": {"q": "cafe"}, "times": 1}
    )
    assert from_config == graders.tool_called("search", {"q": "cafe"}, times=1)
    assert graders.from_openai({"type": "trajectory", "expected": ["a"], "order": "any_order"}) == (
        graders.trajectory(["a"], order="any_order")
    )
    with pytest.raises(
        GraderError, match="order: Input should be 'exact', 'in_order' or 'any_order'"
    ):
        graders.from_openai({"type": "trajectory", "expected": ["a"], "order": "sorted"})
    with pytest.raises(GraderError, match=r"expected\[1\]: unknown key\(s\) \['args'\]"):
        graders.trajectory(["a", {"name": "b", "args": {}}])
    with pytest.raises(GraderError, match=r"expected\[0\]: give a tool name"):
        graders.trajectory([{"arguments": {}}])
    with pytest.raises(GraderError, match="'tool_called': times: Input should be greater"):
        graders.tool_called("search", times=-1)
    with pytest.raises(GraderError, match="limit: Extra inputs are not permitted"):
        graders.from_openai({"type": "max_turns", "n": 2, "limit": 3})
