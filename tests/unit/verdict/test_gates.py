"""Gates: their syntax, the errors that say how to write them, and their checks."""

from __future__ import annotations

import pytest

from pytest_modelopt.verdict.compare import compare_runs
from pytest_modelopt.verdict.gates import GateError, check_comparison, check_run, parse_gate
from pytest_modelopt.verdict.summary import summarize
from tests.unit.comparisons import Run, known_pair


@pytest.fixture
def pair() -> tuple[Run, Run]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles."""
    return known_pair()


@pytest.mark.parametrize(
    ("expression", "metric", "op", "value", "relative", "eval_glob"),
    [
        ("pass_rate>=0.9", "pass_rate", ">=", 0.9, False, None),
        ("pass_rate_lower >= 80%", "pass_rate_lower", ">=", 0.8, False, None),
        ("regression<=0.02", "regression", "<=", 0.02, False, None),
        ("cost_per_case<=+10%", "cost_per_case", "<=", 0.1, True, None),
        ("cost_per_case<=$0.002", "cost_per_case", "<=", 0.002, False, None),
        ("p95_latency<=2.5s", "p95_latency", "<=", 2.5, False, None),
        ("errors==0@test_triage::*", "errors", "==", 0.0, False, "test_triage::*"),
    ],
)
def test_gate_syntax(
    expression: str, metric: str, op: str, value: float, relative: bool, eval_glob: str | None
) -> None:
    gate = parse_gate(expression)
    assert (gate.metric, gate.op, gate.value, gate.relative, gate.eval) == (
        metric,
        op,
        pytest.approx(value),
        relative,
        eval_glob,
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("pass rate >= 0.9", "write METRIC OP VALUE[@EVAL]"),
        ("accuracy>=0.9", "unknown metric 'accuracy'"),
        ("pass_rate>=high", "'high' is not a number"),
        ("pass_rate>=+10%", "only cost and latency gates can be relative"),
    ],
)
def test_bad_gates_say_how_to_write_them(expression: str, message: str) -> None:
    with pytest.raises(GateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_gate(expression)


def test_gates_on_a_run_and_on_a_comparison(pair: tuple) -> None:
    (_base_info, _base), (cand_info, cand) = pair
    rows = summarize(cand_info, cand).evals
    results = check_run([parse_gate("pass_rate>=0.7"), parse_gate("errors==0")], rows)
    failed = {(r.eval, r.gate) for r in results if not r.passed}
    assert failed == {("accuracy", "pass_rate>=0.7")}
    comparison = compare_runs(*pair)
    results = check_comparison(
        [parse_gate("regression<=0.02"), parse_gate("cost_per_case<=+10%")], comparison
    )
    by = {(r.eval, r.gate): r for r in results}
    assert not by[("accuracy", "regression<=0.02")].passed
    assert by[("tone", "regression<=0.02")].passed
    assert all(by[(e, "cost_per_case<=+10%")].passed for e in ("accuracy", "tone"))
    # a huge tolerance turns the same drop into "ok"
    lenient = check_comparison([parse_gate("regression<=0.9")], comparison)
    assert all(r.passed for r in lenient)
