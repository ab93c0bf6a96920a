"""Trajectory graders: what an agent did, not only what it said.

They read ``sample.trajectory`` (records/trajectory.py's shape) and are computed by
``engines/trajectory_rules.py``; like the local graders they export to OpenAI as a
``python`` grader whose source is that module plus the grader's JSON in a header line, so
``from_openai`` gives the same grader back and the exported one scores alike. The tool's
name is the field ``tool`` (``name`` is the grader's, as in every grader).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .engines import trajectory_rules
from .local import RuleGrader

if TYPE_CHECKING:
    from types import ModuleType

Match = Literal["subset", "exact"]


class TrajectoryGrader(RuleGrader):
    engine: ClassVar[ModuleType] = trajectory_rules

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_type(cls, data: Any) -> Any:
        """Unnamed, it is named after its type, and its tool (``tool_called:search``): two
        tool graders of one eval must not share a name."""
        if isinstance(data, dict) and not data.get("name"):
            kind = cls.model_fields["type"].default
            tool = data.get("tool")
            return {**data, "name": f"{kind}:{tool}" if isinstance(tool, str) else kind}
        return data


def _canonical(value: Any) -> Any:
    """JSON values with every object's keys sorted: the exported source spells the spec,
    and a grader rebuilt from its JSON header must spell it the same (round trip)."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError):
        raise ValueError("give JSON values (objects, lists, strings, numbers, booleans)") from None


class ToolCalled(TrajectoryGrader):
    """Passes when ``tool`` was called (``times``: exactly that often), with ``args``
    matching when given (``subset``: these keys at any depth; ``exact``: these and no other)."""

    type: Literal["tool_called"] = "tool_called"
    tool: str = Field(min_length=1)
    args: dict[str, Any] | None = None
    match: Match = "subset"
    times: int | None = Field(default=None, ge=0)

    @field_validator("args")
    @classmethod
    def _json_args(cls, value: Any) -> Any:
        return _canonical(value)


class ToolNotCalled(TrajectoryGrader):
    """Passes when ``tool`` was never called."""

    type: Literal["tool_not_called"] = "tool_not_called"
    tool: str = Field(min_length=1)


class TrajectoryMatch(TrajectoryGrader):
    """The tool calls against ``expected``, passing by ``order``'s rule (exact, in_order,
    any_order) with score 1; a failure scores F1 over calls, partial credit (the rules are
    in engines/trajectory_rules.py's ``rule_trajectory``)."""

    type: Literal["trajectory"] = "trajectory"
    expected: list[dict[str, Any]]
    order: Literal["exact", "in_order", "any_order"] = "exact"
    match: Match = "subset"

    @field_validator("expected", mode="before")
    @classmethod
    def _calls(cls, value: Any) -> Any:
        """A tool name stands for a call of it with any arguments."""
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected must be a list of tool calls")
        calls = []
        for n, call in enumerate(value):
            if isinstance(call, str):
                call = {"name": call}
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ValueError(
                    f"expected[{n}]: give a tool name or {{'name': ..., 'arguments': {{...}}}}"
                )
            unknown = set(call) - {"name", "arguments"}
            if unknown:
                raise ValueError(
                    f"expected[{n}]: unknown key(s) {sorted(unknown)}: a call has only "
                    "'name' and 'arguments'"
                )
            calls.append({k: v for k, v in call.items() if v is not None})
        return _canonical(calls)


class MaxTurns(TrajectoryGrader):
    """Passes when the agent made at most ``n`` model calls (the trajectory's ``turns``)."""

    type: Literal["max_turns"] = "max_turns"
    n: int = Field(ge=0)


class MaxToolCalls(TrajectoryGrader):
    """Passes when the agent made at most ``n`` tool calls."""

    type: Literal["max_tool_calls"] = "max_tool_calls"
    n: int = Field(ge=0)
