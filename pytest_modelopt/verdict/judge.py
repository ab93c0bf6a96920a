"""The one verdict policy: a run's summary, its comparison and the gates make its verdict.

Every driver decides a verdict here and nowhere else: the pytest session at its end,
``modelopt compare`` and ``modelopt report`` on saved runs, and through them the GitHub
Action. So a pair of runs gets the same verdict, the same gate list and the same exit
status whichever of them is asked.

A run fails when any of these holds:

- an eval misses its threshold (its marker's ``threshold``; the interval's lower bound
  with ``strict=True``): the summary row's verdict is ``fail``;
- a gate fails: the configured ones (``[tool.modelopt] fail_on``, ``[tool.modelopt.gates]
  fail_on``, ``--eval-fail-on``) and each eval's own (its marker's ``fail_on``, applied to
  that eval only);
- with a baseline, the regression gate fails: ``regression<=TOLERANCE`` unless a
  ``regression`` gate is configured;
- errors are not passes: the error-rate gate fails, ``error_rate<=MAX_ERROR_RATE`` (10% by
  default, ``[tool.modelopt.gates] max_error_rate``) unless an ``error_rate`` gate is
  configured. Samples that could not run for want of a key or a recording (a fork's
  replay-only run) are reported, not counted.

Judges are held to human labels (``calibration.py``): under a calibration policy, an eval
with an LLM judge that is not calibrated cannot be decided by it. Its threshold verdict
becomes ``inconclusive``, and so does every failed gate of it that its judge decides
(pass rate, score, regression; cost, latency and errors still decide). An inconclusive eval
does not fail the run unless ``fail_inconclusive`` is set; the reports say so loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .calibration import calibrate
from .compare import compare_models, compare_runs
from .document import EvalReport
from .gates import (
    CalibrationPolicy,
    calibration_policy,
    check_comparison,
    check_run,
    parse_gate,
    parse_gates,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..config import Settings
    from ..records.labels import Label
    from ..records.models import CaseRecord, RunInfo, RunSummary
    from .compare import Comparison
    from .gates import Gate


@dataclass(frozen=True)
class Policy:
    """What decides a verdict besides the runs themselves: the configured gates, the
    largest drop that is not a regression, and the significance level."""

    fail_on: tuple[str, ...] = ()
    tolerance: float = 0.02
    alpha: float = 0.05
    max_error_rate: float = 0.1
    calibration: CalibrationPolicy | None = None  # the config's; a marker's wins for its eval
    fail_inconclusive: bool = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        fail_on: Sequence[str] = (),
        tolerance: float | None = None,
        alpha: float | None = None,
    ) -> Policy:
        """The settings' gates, tolerance and alpha, with a command line's additions."""
        return cls(
            fail_on=(*settings.gates.fail_on, *settings.fail_on, *fail_on),
            tolerance=settings.gates.tolerance if tolerance is None else tolerance,
            alpha=settings.gates.alpha if alpha is None else alpha,
            max_error_rate=settings.gates.max_error_rate,
            calibration=calibration_policy(settings.calibration, settings.source_of("calibration")),
            fail_inconclusive=settings.fail_inconclusive,
        )


def gates_for(policy: Policy, summary: RunSummary, *, comparing: bool) -> list[Gate]:
    """The configured gates, each eval's own gates (exact to its name), and with a
    comparison the regression gate at the tolerance unless one is configured.

    Raises GateError for an expression that does not parse.
    """
    gates = parse_gates(policy.fail_on)
    for row in summary.evals:
        gates += [
            parse_gate(g).model_copy(update={"eval": row.eval, "exact": True}) for g in row.fail_on
        ]
    if comparing and not any(g.metric == "regression" for g in gates):
        gates.append(parse_gate(f"regression<={policy.tolerance}"))
    if not any(g.metric == "error_rate" and g.eval is None for g in gates):
        gates.append(parse_gate(f"error_rate<={policy.max_error_rate:g}"))
    return list(dict.fromkeys(gates))


def compare_with(
    summary: RunSummary,
    cases: list[CaseRecord],
    policy: Policy,
    *,
    baseline: tuple[RunInfo, list[CaseRecord]] | None = None,
    baseline_model: str | None = None,
) -> Comparison | None:
    """The run compared with a saved baseline run, or its models with one of them."""
    if baseline is not None:
        return compare_runs(
            baseline, (summary.run, cases), tolerance=policy.tolerance, alpha=policy.alpha
        )
    if baseline_model is not None:
        return compare_models(
            summary.run, cases, baseline_model, tolerance=policy.tolerance, alpha=policy.alpha
        )
    return None


#: Gate metrics an LLM judge decides: an uncalibrated judge makes their failures inconclusive.
JUDGED_METRICS = frozenset({"pass_rate", "pass_rate_lower", "score", "regression"})


def judge(
    summary: RunSummary,
    comparison: Comparison | None,
    policy: Policy,
    *,
    cases: Sequence[CaseRecord] = (),
    labels: Sequence[Label] = (),
) -> EvalReport:
    """The verdict document: ``fail`` when a threshold or a gate fails (module docstring).

    ``cases`` and ``labels``: the run's cases and the human labels, to calibrate its judges.
    """
    gates = gates_for(policy, summary, comparing=comparison is not None)
    calibration = calibrate(cases, labels, policy.calibration)
    undecided = {c.eval for c in calibration if c.calibrated is False}
    results = check_run(gates, summary.evals)
    if comparison is not None:
        results += check_comparison(gates, comparison)
    results = [
        r.model_copy(update={"inconclusive": True})
        if not r.passed and r.eval in undecided and parse_gate(r.gate).metric in JUDGED_METRICS
        else r
        for r in results
    ]
    rows = [
        row.model_copy(update={"verdict": "inconclusive"})
        if row.eval in undecided and row.verdict in ("pass", "fail")
        else row
        for row in summary.evals
    ]
    inconclusive = any(r.inconclusive for r in results) or any(
        row.verdict == "inconclusive" for row in rows
    )
    failed = (
        any(not g.passed and not g.inconclusive for g in results)
        or any(row.verdict == "fail" for row in rows)
        or (inconclusive and policy.fail_inconclusive)
    )
    return EvalReport(
        verdict="fail" if failed else "pass",
        summary=summary.model_copy(update={"evals": rows}) if undecided else summary,
        comparison=comparison,
        gates=results,
        calibration=calibration,
        fail_inconclusive=policy.fail_inconclusive,
    )
