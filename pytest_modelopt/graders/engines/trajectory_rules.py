"""The rules behind the trajectory graders (tool_called, trajectory, max_turns...).

Self-contained on purpose (standard library only): the same source text runs locally and
is shipped verbatim inside the OpenAI ``python`` grader that ``to_openai()`` exports, so a
trajectory grader scores identically wherever it runs. Each rule reads
``sample["trajectory"]``, a dict of records/trajectory.py's shape; a sample without one is
an error (ValueError), never a pass: a grader that cannot see what the agent did cannot
say it did the right thing.
"""

from __future__ import annotations

import json
from typing import Any

Result = tuple[float, bool, str]


def trajectory_of(sample: Any) -> Any:
    trajectory = sample.get("trajectory") if isinstance(sample, dict) else None
    if not isinstance(trajectory, dict) or not isinstance(trajectory.get("items"), list):
        raise ValueError(
            "the sample has no trajectory: grade what an agent returned (a run with tool "
            "calls), not a plain completion or text"
        )
    return trajectory


def tool_calls(trajectory: Any) -> list[Any]:
    return [i for i in trajectory["items"] if isinstance(i, dict) and i.get("kind") == "tool_call"]


def parsed(arguments: Any) -> Any:
    """Arguments as JSON values: a raw string that parses is its value."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def same(got: Any, want: Any, subset: bool) -> bool:
    """``got`` equals ``want``; with ``subset``, objects (at any depth) may have more keys.

    Lists compare element by element (same length, same order). True and 1 differ; 1 and
    1.0 do not (JSON does not tell them apart).
    """
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return False
        if not subset and set(got) != set(want):
            return False
        return all(key in got and same(got[key], value, subset) for key, value in want.items())
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(got[n], w, subset) for n, w in enumerate(want))
        )
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and got == want
    return bool(got == want)


def call_matches(call: Any, want: Any, subset: bool) -> bool:
    """A tool_call item is the wanted call: its name, and its arguments when given."""
    if call.get("name") != want["name"]:
        return False
    if want.get("arguments") is None:
        return True
    return same(parsed(call.get("arguments")), parsed(want["arguments"]), subset)


def show(call: Any) -> str:
    arguments = parsed(call.get("arguments"))
    text = "" if arguments is None else json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{call.get('name')}({text})"


def listing(calls: list[Any]) -> str:
    if not calls:
        return "no tool calls"
    shown = ", ".join(show(c) for c in calls[:8])
    return shown + (f", ... ({len(calls)} calls)" if len(calls) > 8 else "")


def rule_tool_called(spec: Any, calls: list[Any]) -> Result:
    name, times, subset = spec["tool"], spec.get("times"), spec.get("match") != "exact"
    want = {"name": name, "arguments": spec.get("args")}
    named = [c for c in calls if c.get("name") == name]
    found = [c for c in named if call_matches(c, want, subset)]
    what = f"{name!r}" if want["arguments"] is None else f"{name!r} with {spec['match']} args"
    if times is None:
        ok = bool(found)
        rule = "at least once"
    else:
        ok = len(found) == times
        rule = f"exactly {times} time{'s' if times != 1 else ''}"
    if ok:
        return 1.0, True, f"{what} called {len(found)} time(s), wanted {rule}"
    if named and not found:
        return 0.0, False, f"{what} never matched, wanted {rule}; its calls: {listing(named)}"
    seen = listing(calls)
    return 0.0, False, f"{what} called {len(found)} time(s), wanted {rule}; calls: {seen}"


def rule_tool_not_called(spec: Any, calls: list[Any]) -> Result:
    named = [c for c in calls if c.get("name") == spec["tool"]]
    if named:
        return 0.0, False, f"{spec['tool']!r} called {len(named)} time(s): {listing(named)}"
    return 1.0, True, f"{spec['tool']!r} not called ({listing(calls)})"


def pairs(calls: list[Any], expected: list[Any], subset: bool) -> int:
    """The most expected calls matched to distinct actual calls (bipartite matching)."""
    owner: dict[int, int] = {}  # actual call -> the expected call it is matched to

    def assign(e: int, seen: set[int]) -> bool:
        for a, call in enumerate(calls):
            if a in seen or not call_matches(call, expected[e], subset):
                continue
            seen.add(a)
            if a not in owner or assign(owner[a], seen):
                owner[a] = e
                return True
        return False

    return sum(1 for e in range(len(expected)) if assign(e, set()))


def in_order(calls: list[Any], expected: list[Any], subset: bool) -> int:
    """The most expected calls matched to actual calls in the same order (others may come
    between): the longest common subsequence, a call matching an expected call."""
    row = [0] * (len(expected) + 1)
    for call in calls:
        diagonal = 0
        for e, want in enumerate(expected):
            above = row[e + 1]
            row[e + 1] = diagonal + 1 if call_matches(call, want, subset) else max(above, row[e])
            diagonal = above
    return row[-1]


def f1(matched: int, made: int, wanted: int) -> float:
    if made == 0 and wanted == 0:
        return 1.0
    if matched == 0:
        return 0.0
    precision, recall = matched / made, matched / wanted
    return 2 * precision * recall / (precision + recall)


def rule_trajectory(spec: Any, calls: list[Any]) -> Result:
    """Passes by ``order``'s rule, scoring 1; a failure scores F1 over calls (partial
    credit), counting calls matched in order for exact / in_order, in any order for
    any_order. So the score is 1 exactly when it passes, as an exported grader's is."""
    expected = [w if isinstance(w, dict) else {"name": w} for w in spec["expected"]]
    order, subset = spec.get("order", "exact"), spec.get("match") != "exact"
    if order == "any_order":
        matched = pairs(calls, expected, subset)
        rule = "every expected call, in any order, others allowed"
        ok = matched == len(expected)
    elif order == "in_order":
        matched = in_order(calls, expected, subset)
        rule = "the expected calls in order, others allowed between"
        ok = matched == len(expected)
    else:
        matched = in_order(calls, expected, subset)
        rule = "the same calls in the same order, no others"
        ok = matched == len(expected) == len(calls)
    made = f"{len(calls)} made: {listing(calls)}"
    if ok:
        return 1.0, True, f"pass: wanted {rule}; {made}"
    score = f1(matched, len(calls), len(expected))
    return (
        score,
        False,
        f"fail: wanted {rule}; {matched} of {len(expected)} expected calls matched, {made}; "
        f"F1 {score:.2f}",
    )


def rule_max(spec: Any, used: int, unit: str) -> Result:
    limit = spec["n"]
    ok = used <= limit
    return (1.0 if ok else 0.0), ok, f"{used} {unit} {'<=' if ok else '>'} {limit}"


def evaluate(spec: Any, sample: Any, item: Any) -> Result:
    """(score, passed, reason) of one trajectory rule on one sample."""
    kind = spec["type"]
    trajectory = trajectory_of(sample)
    calls = tool_calls(trajectory)
    if kind == "tool_called":
        return rule_tool_called(spec, calls)
    if kind == "tool_not_called":
        return rule_tool_not_called(spec, calls)
    if kind == "trajectory":
        return rule_trajectory(spec, calls)
    if kind == "max_turns":
        return rule_max(spec, int(trajectory.get("turns") or 0), "turns")
    if kind == "max_tool_calls":
        return rule_max(spec, len(calls), "tool calls")
    raise ValueError(f"unknown trajectory rule {kind!r}")
