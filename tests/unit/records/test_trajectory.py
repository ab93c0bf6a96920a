"""The trajectory format: what adapters write and graders read, strict, and optional in a
case record (runs written before format 5 have none and are still read)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from pytest_modelopt.records.models import SCHEMA_VERSION, CaseRecord
from pytest_modelopt.records.store import read_cases
from pytest_modelopt.records.trajectory import Item, Trajectory

if TYPE_CHECKING:
    from pathlib import Path

AGREED = {
    "items": [
        {"kind": "message", "agent": "triage", "role": "user", "content": "refund order 7"},
        {"kind": "reasoning", "agent": "triage", "content": "needs the billing agent"},
        {"kind": "handoff", "agent": "triage", "name": "billing"},
        {"kind": "tool_call", "agent": "billing", "name": "refund", "call_id": "c1",
         "arguments": {"order": 7}},
        {"kind": "tool_output", "agent": "billing", "call_id": "c1", "output": "refunded"},
        {"kind": "tool_call", "name": "notify", "call_id": "c2", "arguments": "not json"},
        {"kind": "tool_output", "call_id": "c2", "error": "TimeoutError: mail server"},
        {"kind": "guardrail", "name": "pii", "content": "no personal data"},
        {"kind": "message", "agent": "billing", "role": "assistant", "content": "Refunded."},
    ],
    "turns": 3,
    "final_output": "Refunded.",
}  # fmt: skip


def test_the_agreed_shape_round_trips() -> None:
    trajectory = Trajectory.model_validate(AGREED)
    assert [i.kind for i in trajectory.tool_calls()] == ["tool_call", "tool_call"]
    assert trajectory.items[5].arguments == "not json"  # unparsable arguments stay raw
    dumped = trajectory.model_dump(exclude_none=True)
    assert dumped == AGREED
    assert Trajectory.model_validate_json(trajectory.model_dump_json()) == trajectory


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"items": [], "turns": 1, "steps": 2}, "steps\n  Extra inputs are not permitted"),
        ({"items": [{"kind": "tool_call", "tool": "x"}]}, "tool\n  Extra inputs are not"),
        ({"items": [{"kind": "function_call"}]}, "Input should be 'message', 'tool_call'"),
        ({"items": [], "turns": -1}, "greater than or equal to 0"),
        ({"items": [{"kind": "tool_call", "arguments": [1]}]}, "arguments.dict"),
    ],
)
def test_unknown_fields_and_bad_values_are_refused(data: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Trajectory.model_validate(data)


def test_a_case_may_carry_one_and_older_runs_still_read(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 5
    base = {"eval": "e", "nodeid": "t.py::t", "model": "m", "case_id": "c", "status": "passed"}
    older = {**base, "schema_version": 4, "nodeid": "t.py::old"}
    newer = {**base, "schema_version": 5, "trajectory": AGREED}
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "main.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in (older, newer)), encoding="utf-8"
    )
    read = {r.nodeid: r for r in read_cases(tmp_path)}
    assert read["t.py::old"].trajectory is None
    assert read["t.py::t"].trajectory == Trajectory.model_validate(AGREED)
    # summaries hold every case at once: slim records leave the trajectory out
    assert all(r.trajectory is None for r in read_cases(tmp_path, slim=True))
    with pytest.raises(ValidationError, match="Extra inputs"):
        CaseRecord.model_validate({**newer, "trajectory": {**AGREED, "extra": 1}})
    assert Item(kind="handoff", name="billing").model_dump(exclude_none=True) == {
        "kind": "handoff",
        "name": "billing",
    }
