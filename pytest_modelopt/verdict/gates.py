"""Gates: what must hold for a run (or a comparison) to pass.

A gate is ``METRIC OP VALUE[@EVAL]``, for example::

    pass_rate>=0.9                 every eval's pass rate
    pass_rate_lower>=80%           the lower end of its 95% interval (strict)
    regression<=0.02               no significant drop larger than 2 points vs the baseline
    cost_per_case<=+10%            at most 10% dearer per case than the baseline
    cost_per_case<=$0.002          absolute, in USD
    p95_latency<=2.5s              also p50_latency
    errors==0                      API and grader errors
    error_rate<=5%                 the share of samples that ran and errored (by default
                                   every run has error_rate<=max_error_rate, 10%)
    score>=0.7@test_triage::*      one eval (a glob on its name)

Operators: ``>= > <= < ==``. A value may end in ``%`` (divided by 100) or ``s``; a leading
``+``/``-`` with ``%`` means relative to the baseline. A gate that needs a baseline and has
none is skipped, not failed.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .compare import verdict_for
from .stats import wilson_interval

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..records.models import EvalSummary
    from .compare import Comparison, EvalComparison

METRICS = (
    "pass_rate",
    "pass_rate_lower",
    "score",
    "regression",
    "cost_per_case",
    "p50_latency",
    "p95_latency",
    "errors",
    "error_rate",
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_GATE = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>[^@\s]+)\s*"
    r"(?:@\s*(?P<eval>.+?))?\s*$"
)
_VALUE = re.compile(r"^(?P<sign>[+-])?\$?(?P<number>\d+(?:\.\d+)?|\.\d+)(?P<unit>%|s)?$")


class GateError(ValueError):
    """A gate expression that cannot be read; the message shows the syntax."""


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expression: str
    metric: str
    op: str
    value: float
    relative: bool = False
    eval: str | None = None
    exact: bool = False  # ``eval`` is a name (from the eval's own marker), not a glob

    def applies_to(self, name: str) -> bool:
        if self.eval is None:
            return True
        return name == self.eval if self.exact else fnmatch.fnmatchcase(name, self.eval)


class CalibrationPolicy(BaseModel):
    """When an LLM judge may decide a verdict: it has at least ``min_labels`` human labels
    bound to its identity, and the lower end of the 95% interval of its Cohen's kappa with
    them is at least ``min_kappa`` (see verdict/calibration.py). From ``[tool.modelopt]
    calibration`` or an eval marker's ``calibration=``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_labels: int = Field(default=30, ge=1)
    min_kappa: float = Field(default=0.6, ge=-1, le=1)


def calibration_policy(value: Any, where: str) -> CalibrationPolicy | None:
    """A policy from a marker or the config (a mapping), or None; GateError naming ``where``
    and the field when it is not one."""
    if value is None:
        return None
    if isinstance(value, CalibrationPolicy):
        return value
    if not isinstance(value, dict):
        raise GateError(
            f"{where}: calibration must be a table such as {{min_labels = 30, min_kappa = 0.6}}, "
            f"got {value!r}"
        )
    try:
        return CalibrationPolicy.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "calibration"
        raise GateError(
            f"{where}: calibration.{field}: {first['msg']} (known: min_labels, min_kappa)"
        ) from None


class GateResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate: str
    eval: str
    model: str
    passed: bool
    actual: str
    message: str
    # failed, but on an eval whose judge is not calibrated: it cannot decide (judge.py)
    inconclusive: bool = False


def parse_gate(expression: str) -> Gate:
    match = _GATE.match(expression)
    if not match:
        raise GateError(
            f"cannot read gate {expression!r}: write METRIC OP VALUE[@EVAL], e.g. "
            "pass_rate>=0.9, p95_latency<=2.5s, cost_per_case<=+10%"
        )
    metric = match["metric"]
    if metric not in METRICS:
        raise GateError(
            f"gate {expression!r}: unknown metric {metric!r} (known: {', '.join(METRICS)})"
        )
    value = _VALUE.match(match["value"])
    if not value:
        raise GateError(
            f"gate {expression!r}: {match['value']!r} is not a number (0.9, 90%, 2.5s, +10%)"
        )
    number = float(value["number"]) / (100 if value["unit"] == "%" else 1)
    relative = bool(value["sign"]) and value["unit"] == "%"
    if value["sign"] == "-":
        number = -number
    if relative and metric not in ("cost_per_case", "p50_latency", "p95_latency"):
        raise GateError(f"gate {expression!r}: only cost and latency gates can be relative")
    return Gate(
        expression=expression.strip(),
        metric=metric,
        op=match["op"],
        value=number,
        relative=relative,
        eval=match["eval"],
    )


def parse_gates(expressions: Sequence[str]) -> list[Gate]:
    return [parse_gate(e) for e in expressions]


def _fmt(metric: str, value: float) -> str:
    if metric in ("pass_rate", "pass_rate_lower", "regression", "error_rate"):
        return f"{value:.1%}"
    if metric.endswith("latency"):
        return f"{value:.2f}s"
    if metric == "cost_per_case":
        return f"${value:.6f}"
    return f"{value:g}"


def check_run(gates: Sequence[Gate], rows: Sequence[EvalSummary]) -> list[GateResult]:
    """Gates on one run's numbers (baseline-relative gates are skipped)."""
    results = []
    for gate in gates:
        if gate.metric == "regression" or gate.relative:
            continue
        for row in rows:
            if not gate.applies_to(row.eval) or row.verdict == "pending":
                continue
            actual = _run_metric(gate.metric, row)
            at_least = ""
            partly = row.cost is not None and row.unpriced_calls and row.cases
            if actual is None and partly and gate.metric == "cost_per_case" and gate.op[0] == "<":
                # a partly known cost that already fails a ceiling fails it; below, unknown
                actual, at_least = (row.cost or 0.0) / row.cases, "at least "
                if _OPS[gate.op](actual, gate.value):
                    continue
            if actual is None:
                continue
            passed = _OPS[gate.op](actual, gate.value)
            results.append(
                GateResult(
                    gate=gate.expression,
                    eval=row.eval,
                    model=row.model,
                    passed=passed,
                    actual=_fmt(gate.metric, actual),
                    message=f"{gate.metric} {at_least}{_fmt(gate.metric, actual)} "
                    f"{'meets' if passed else 'fails'} {gate.op} {_fmt(gate.metric, gate.value)}",
                )
            )
    return results


def _run_metric(metric: str, row: EvalSummary) -> float | None:
    if metric == "pass_rate":
        return row.pass_rate
    if metric == "pass_rate_lower":
        return wilson_interval(row.passed, row.graded).low if row.graded else None
    if metric == "score":
        return row.mean_score
    if metric == "errors":
        return float(row.errors)
    if metric == "error_rate":
        return error_rate(row)
    if metric == "p50_latency":
        return row.latency_p50
    if metric == "p95_latency":
        return row.latency_p95
    if metric == "cost_per_case":
        if row.cost is None or row.unpriced_calls or not row.cases:
            return None  # unknown, or only partly known: not a cost to gate on
        return row.cost / row.cases
    return None


def error_rate(row: EvalSummary) -> float | None:
    """The share of the eval's samples that ran and errored. Samples that could not run (no
    key, no recording: a fork's replay-only run) are left out; None when none ran."""
    counted = row.errors - row.errors_not_run
    ran = row.samples - row.pending - row.skipped - row.errors_not_run
    return counted / ran if ran > 0 else None


def check_comparison(gates: Sequence[Gate], comparison: Comparison) -> list[GateResult]:
    """Gates that need a baseline: regressions, relative cost and latency."""
    results = []
    for gate in gates:
        for row in comparison.evals:
            if not gate.applies_to(row.eval):
                continue
            result = _compared(gate, row, comparison)
            if result is not None:
                results.append(result)
    return results


def _compared(gate: Gate, row: EvalComparison, comparison: Comparison) -> GateResult | None:
    model = row.candidate.model
    if gate.metric == "regression":
        if abs(gate.value - comparison.tolerance) > 1e-12:
            verdict, why = verdict_for(row, gate.value, comparison.alpha)
        else:
            verdict, why = row.verdict, row.why
        passed = verdict != "regressed"
        actual = "n/a" if row.delta is None else f"{row.delta:+.1%}"
        return GateResult(
            gate=gate.expression,
            eval=row.eval,
            model=model,
            passed=passed,
            actual=actual,
            message=f"{verdict}: {why}",
        )
    if not gate.relative:
        return None
    if gate.metric == "cost_per_case":
        change = row.delta_cost_per_case
    else:
        side_b = (
            row.baseline.latency_p95 if gate.metric == "p95_latency" else row.baseline.latency_p50
        )
        side_c = (
            row.candidate.latency_p95 if gate.metric == "p95_latency" else row.candidate.latency_p50
        )
        change = None if not side_b or side_c is None else side_c / side_b - 1
    if change is None:
        return None
    passed = _OPS[gate.op](change, gate.value)
    return GateResult(
        gate=gate.expression,
        eval=row.eval,
        model=model,
        passed=passed,
        actual=f"{change:+.1%}",
        message=f"{gate.metric} {change:+.1%} vs the baseline "
        f"{'meets' if passed else 'fails'} {gate.op} {gate.value:+.0%}",
    )
