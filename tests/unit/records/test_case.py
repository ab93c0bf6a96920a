"""A case's record: the fields it is written from are exactly its CaseRecord's dump."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING

import pydantic_core

from pytest_modelopt.collect.datasets import Case
from pytest_modelopt.collect.spec import EvalParam, build_spec
from pytest_modelopt.graders import function, string_check
from pytest_modelopt.graders.base import Grade
from pytest_modelopt.model.types import Completion, Usage
from pytest_modelopt.records.case import CaseState
from pytest_modelopt.records.models import CaseRecord, ErrorRecord, GradeRecord
from pytest_modelopt.records.store import RunWriter
from pytest_modelopt.records.trajectory import Item, Trajectory

if TYPE_CHECKING:
    from pathlib import Path


def case_states(tmp_path: Path) -> list[CaseState]:
    """Cases ending every way a record can say: passes and failures with and without
    grades, errors, skips, samples, several calls, judges, free and unpriced calls."""
    spec = build_spec(
        {"threshold": 1, "fail_on": ["pass_rate>=0.5"]},
        default_name="e",
        selected_models=["m"],
        test_dir=tmp_path,
        rootdir=tmp_path,
    )
    row = Case(
        {"id": "c1", "q": "ü", "n": 3, "when": date(2026, 1, 2)}, id="c1", source="d.yaml", line=2
    )

    def call(cost: float | None, latency: float = 0.25) -> Completion:
        usage = Usage(prompt_tokens=3, completion_tokens=2, cached_tokens=1)
        return Completion("out", "m", "chat", usage=usage, cost=cost, latency_s=latency, request={})

    states = []
    for status in ("passed", "failed", "error", "skipped", "pending", None):
        state = CaseState(EvalParam(spec, "m", row, sample=1), f"t[{status}]", "c1")
        state.status = status  # type: ignore[assignment]
        states.append(state)
    graded, asserted, errored = states[0], states[1], states[2]
    graded.add_call(call(0.0, 1), [{"role": "user", "content": "ü"}], declared=True)
    graded.add_call(call(0.0), "again")
    graded.add_grade(Grade(name="s", score=1, passed=True, sub_scores={"a": 1}), string_check("x"))
    graded.add_grade(Grade(name="f", score=0.5, passed=False, reason="half"), function(len))
    graded.add_judge_call(call(None))
    graded.completion_metadata = {"modelopt_eval": "e", "n": 1}  # type: ignore[dict-item]
    graded.duration_s = 1
    graded.trajectory = Trajectory(
        items=[
            Item(kind="tool_call", name="lookup", arguments={"id": 3, "deep": {"a": [1]}}),
            Item(kind="tool_output", call_id="c", output="key sk-abcdefghijklmnop"),
        ],
        turns=2,
        final_output="done",
    )
    asserted.add_call(call(None), "q")
    asserted.assert_reason = "wrong"
    errored.error = ErrorRecord(kind="rate_limit", message="429 after 5 attempts")
    states.append(CaseState(EvalParam(spec, "m"), "t[no dataset]", "default"))
    return states


def test_record_fields_are_exactly_the_case_record_dump(tmp_path: Path) -> None:
    """The dict a case is written from is its CaseRecord's dump, field for field and type
    for type, so the line written without building the model is the model's own line."""
    for state in case_states(tmp_path):
        fields = state.record_fields()
        record = CaseRecord.model_validate(fields)
        assert list(fields) == list(CaseRecord.model_fields)
        for grade in fields["grades"]:
            assert list(grade) == list(GradeRecord.model_fields)
        assert pydantic_core.to_json(fields, fallback=str) == record.model_dump_json(
            fallback=str
        ).encode("utf-8")
    graded, asserted, errored, skipped, pending, unfinished, plain = (
        CaseRecord.model_validate(state.record_fields()) for state in case_states(tmp_path)
    )
    assert graded.usage.prompt_tokens == 6
    assert graded.usage.cached_tokens == 2
    assert (graded.calls, graded.latency_s, graded.cost, graded.duration_s) == (2, 1.25, 0.0, 1.0)
    assert (graded.judge_calls, graded.judge_tokens, graded.judge_cost) == (1, 5, None)
    assert [(g.name, g.score, g.sub_scores) for g in graded.grades] == [
        ("s", 1.0, {"a": 1.0}),
        ("f", 0.5, {}),
    ]
    assert graded.grades[0].grader == string_check("x").to_openai()
    assert graded.grades[1].grader is None  # a Python function has no OpenAI JSON
    assert graded.completion_metadata == {"modelopt_eval": "e", "n": "1"}
    assert graded.input == [{"role": "user", "content": "ü"}]
    assert graded.item == {"id": "c1", "q": "ü", "n": 3, "when": date(2026, 1, 2)}
    assert graded.threshold == 1.0
    assert graded.fail_on == ["pass_rate>=0.5"]
    assert [(g.name, g.passed, g.reason) for g in asserted.grades] == [("assert", False, "wrong")]
    assert asserted.cost is None  # one unpriced call: the case's cost is unknown
    assert errored.error == ErrorRecord(kind="rate_limit", message="429 after 5 attempts")
    assert (skipped.grades, pending.grades, unfinished.status) == ([], [], "error")
    assert plain.item is None
    assert plain.trajectory is None
    assert graded.trajectory is not None
    assert graded.trajectory.items[0].arguments == {"id": 3, "deep": {"a": [1]}}
    assert graded.trajectory.items[1].output == "key ***"  # a tool's output is redacted too
    assert plain.sample == 0
    path = tmp_path / "run"
    writer = RunWriter(path, "main")
    for state in case_states(tmp_path):
        writer.append(state.record_fields())
    writer.close()
    lines = (path / "cases" / "main.jsonl").read_bytes().splitlines()
    assert len(lines) == 7
    assert [
        CaseRecord.model_validate_json(line).model_dump_json(fallback=str).encode()
        for line in lines
    ] == lines
    assert json.loads(lines[0])["item"]["when"] == "2026-01-02"  # exotic values as text


def test_the_declared_agent_run_is_the_cases_trajectory_else_the_last(tmp_path: Path) -> None:
    state = case_states(tmp_path)[-1]
    first = {"items": [], "turns": 1, "final_output": "first"}
    state.add_trajectory(first)
    state.add_trajectory({"items": [], "turns": 2, "final_output": "last"})
    assert state.trajectory is not None
    assert state.trajectory.final_output == "last"  # no agent= run: the last one

    state.add_trajectory(Trajectory(turns=3, final_output="declared"), declared=True)
    state.add_trajectory(first)  # a later run_agent or graded run does not replace it
    assert state.trajectory.final_output == "declared"
    assert state.record_fields()["trajectory"]["turns"] == 3
