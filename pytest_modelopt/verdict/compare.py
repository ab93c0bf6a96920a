"""Baseline vs candidate: paired per-case statistics and a verdict per eval.

Cases are paired by (eval, case id) between two runs, or between two models of one run
(the baseline model against each candidate model). Cases on one side only are listed as
added or removed, never dropped silently. With ``samples > 1`` a case's score is the mean
over its samples and the case is the unit of every statistic (Miller, 2024).

A regression is called only when the drop is larger than the tolerance *and* significant
after Holm-Bonferroni across the family (every eval × model row of one comparison that has
a p-value; docs/comparing.md "Many evals, one family"); a drop whose interval still allows more
than the tolerance, without being significant, is *inconclusive* — never silently *ok*.

*ok* needs an interval that rules out a drop beyond the tolerance, and an interval that
cannot collapse: for pass/fail cases Newcombe's paired interval (Wilson-based; two cases that
agree give about ±66%, sixty about ±6%), so a comparison too small to see a drop of the
tolerance is *inconclusive*. For fractional outcomes (several samples a case) the paired
bootstrap's interval is used, and *ok* also needs the cases to detect a drop of the tolerance
(the minimum detectable effect at 80% power is at most the tolerance).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import stats

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..records.models import CaseRecord, RunInfo

SCHEMA_VERSION = 1
Verdict = Literal["improved", "ok", "regressed", "inconclusive"]
# pass/fail cases: McNemar's mid-p test, and Newcombe's paired interval for the difference
BINARY_TEST = "McNemar mid-p"
CASES_SHOWN = 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Side(_Model):
    """One side's numbers for one eval, over the cases it has."""

    model: str
    cases: int
    errors: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    mean_score: float | None
    cost_per_case: float | None
    latency_p50: float | None
    latency_p95: float | None


class CaseDiff(_Model):
    case_id: str
    baseline_score: float | None
    candidate_score: float | None
    baseline_output: str | None
    candidate_output: str | None
    reason: str = ""


class EvalComparison(_Model):
    eval: str
    baseline: Side
    candidate: Side
    paired: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    delta_score: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    test: str = ""
    mde: float | None = None
    verdict: Verdict = "inconclusive"
    why: str = ""
    delta_cost_per_case: float | None = None  # relative: +0.10 is 10% dearer
    delta_p95: float | None = None  # seconds
    regressed_cases: list[CaseDiff] = Field(default_factory=list)
    fixed_cases: list[CaseDiff] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)  # prompt / dataset / graders differ


class Comparison(_Model):
    schema_version: int = SCHEMA_VERSION
    baseline_run: str
    candidate_run: str
    tolerance: float
    alpha: float  # family-wise: Holm keeps P(any false "regressed") <= alpha over the family
    evals: list[EvalComparison]
    # The family whose p-values Holm adjusts together: the rows of ``evals`` with a p-value.
    # None in a report written before it was recorded.
    family_size: int | None = None
    family_method: Literal["holm"] = "holm"
    notes: list[str] = Field(default_factory=list)  # the runs' own (RunInfo.notes)

    @property
    def regressed(self) -> list[EvalComparison]:
        return [e for e in self.evals if e.verdict == "regressed"]


def _case_scores(records: Iterable[CaseRecord]) -> dict[str, tuple[float, float, CaseRecord]]:
    """Per case: (pass rate over samples, mean score, a representative record)."""
    by_case: dict[str, list[CaseRecord]] = defaultdict(list)
    for record in records:
        if record.status in ("passed", "failed"):
            by_case[record.case_id].append(record)
    out = {}
    for case_id, samples in by_case.items():
        rate = sum(r.status == "passed" for r in samples) / len(samples)
        scores = [s for s in (r.score for r in samples) if s is not None]
        out[case_id] = (rate, sum(scores) / len(scores) if scores else rate, samples[0])
    return out


def _side(model: str, records: list[CaseRecord]) -> Side:
    graded = _case_scores(records)
    rates = [rate for rate, _, _ in graded.values()]
    scores = [score for _, score, _ in graded.values()]
    n = len(rates)
    interval = stats.wilson_interval(sum(rates), n) if n else None
    called = [r for r in records if r.calls]
    case_ids = {r.case_id for r in records}
    latencies = [r.latency_s for r in called if r.latency_s is not None]
    return Side(
        model=model,
        cases=len(case_ids),
        errors=sum(r.status == "error" for r in records),
        pass_rate=stats.mean(rates),
        pass_rate_low=interval.low if interval else None,
        pass_rate_high=interval.high if interval else None,
        mean_score=stats.mean(scores),
        cost_per_case=(
            None
            if not called or any(r.unpriced for r in called)  # a part is not a cost
            else sum(r.cost or 0.0 for r in called) / max(len(case_ids), 1)
        ),
        latency_p50=stats.percentile(latencies, 50),
        latency_p95=stats.percentile(latencies, 95),
    )


def _fingerprints(records: list[CaseRecord]) -> dict[str, str]:
    for record in records:
        if record.fingerprint:
            return record.fingerprint
    return {}


def compare_eval(
    name: str,
    baseline: list[CaseRecord],
    candidate: list[CaseRecord],
    *,
    baseline_model: str,
    candidate_model: str,
    tolerance: float,
    seed: int = 0,
) -> EvalComparison:
    base_cases = _case_scores(baseline)
    cand_cases = _case_scores(candidate)
    paired = sorted(set(base_cases) & set(cand_cases))
    all_base = {r.case_id for r in baseline}
    all_cand = {r.case_id for r in candidate}
    result = EvalComparison(
        eval=name,
        baseline=_side(baseline_model, baseline),
        candidate=_side(candidate_model, candidate),
        paired=len(paired),
        added=sorted(all_cand - all_base),
        removed=sorted(all_base - all_cand),
    )
    base_fp, cand_fp = _fingerprints(baseline), _fingerprints(candidate)
    result.changed = (
        sorted(key for key in set(base_fp) | set(cand_fp) if base_fp.get(key) != cand_fp.get(key))
        if base_fp and cand_fp
        else []
    )
    if result.baseline.cost_per_case and result.candidate.cost_per_case is not None:
        result.delta_cost_per_case = (
            result.candidate.cost_per_case / result.baseline.cost_per_case - 1
        )
    if result.baseline.latency_p95 is not None and result.candidate.latency_p95 is not None:
        result.delta_p95 = result.candidate.latency_p95 - result.baseline.latency_p95
    if not paired:
        result.why = "no case graded on both sides"
        return result
    base_rates = [base_cases[c][0] for c in paired]
    cand_rates = [cand_cases[c][0] for c in paired]
    binary = all(r in (0.0, 1.0) for r in base_rates + cand_rates)
    delta, interval, boot_p = stats.paired_bootstrap(base_rates, cand_rates, seed=seed)
    result.delta_score = stats.mean([cand_cases[c][1] - base_cases[c][1] for c in paired])
    if binary:
        pairs = list(zip(base_rates, cand_rates, strict=True))
        lost = sum(b == 1.0 and c == 0.0 for b, c in pairs)
        won = sum(b == 0.0 and c == 1.0 for b, c in pairs)
        both = sum(b == 1.0 and c == 1.0 for b, c in pairs)
        interval = stats.newcombe_paired_interval(both, lost, won, len(pairs) - both - lost - won)
        result.p_value, result.test = stats.mcnemar_midp(lost, won), BINARY_TEST
    else:
        result.p_value, result.test = boot_p, "paired bootstrap"
    result.delta, result.delta_low, result.delta_high = delta, interval.low, interval.high
    diffs = [c - b for b, c in zip(base_rates, cand_rates, strict=True)]
    spread = _sd(diffs)
    result.mde = stats.minimum_detectable_effect(
        len(paired),
        sd_diff=spread if spread > 0 else None,
        baseline_rate=result.baseline.pass_rate,
    )
    for case_id in paired:
        b_rate, b_score, b_rec = base_cases[case_id]
        c_rate, c_score, c_rec = cand_cases[case_id]
        diff = CaseDiff(
            case_id=case_id,
            baseline_score=b_score,
            candidate_score=c_score,
            baseline_output=b_rec.output,
            candidate_output=c_rec.output,
            reason="; ".join(g.reason for g in c_rec.grades if not g.passed and g.reason),
        )
        if c_rate < b_rate:
            result.regressed_cases.append(diff)
        elif c_rate > b_rate:
            result.fixed_cases.append(diff)
    result.regressed_cases.sort(key=lambda d: (d.candidate_score or 0) - (d.baseline_score or 0))
    result.fixed_cases.sort(key=lambda d: (d.baseline_score or 0) - (d.candidate_score or 0))
    del result.regressed_cases[CASES_SHOWN:]
    del result.fixed_cases[CASES_SHOWN:]
    return result


def _sd(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return float((sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5)


def decide(results: list[EvalComparison], *, tolerance: float, alpha: float) -> int:
    """Holm-adjust the p-values across the family, then give each eval its verdict.

    The family is every eval × model row of this comparison that has a p-value (a row with
    no paired case has none). Per-grader pass rates are descriptive and never tested, so
    they do not join it. Returns the family's size.
    """
    tested = [r for r in results if r.p_value is not None]
    for result, adjusted in zip(
        tested, stats.holm_adjusted([r.p_value or 1.0 for r in tested]), strict=True
    ):
        result.p_adjusted = adjusted
    for result in results:
        result.verdict, result.why = verdict_for(result, tolerance, alpha)
    return len(tested)


def family_text(comparison: Comparison) -> str:
    """The multiplicity correction in words, as every report states it:
    "Holm over 60 comparisons, family-wise α = 0.05"."""
    size = comparison.family_size
    if size is None:
        return f"Holm-adjusted across the evals compared, α = {comparison.alpha:g}"
    if size == 0:
        return f"no comparison had a p-value to adjust, α = {comparison.alpha:g}"
    if size == 1:
        return f"one comparison (Holm leaves its p as it is), α = {comparison.alpha:g}"
    return f"Holm over {size} comparisons, family-wise α = {comparison.alpha:g}"


def verdict_for(r: EvalComparison, tolerance: float, alpha: float) -> tuple[Verdict, str]:
    """The verdict and its reason at this tolerance (gates may ask for another one)."""
    if r.delta is None or r.p_adjusted is None:
        return "inconclusive", r.why or "nothing to compare"
    significant = r.p_adjusted < alpha
    p = f"p={r.p_adjusted:.3g} ({r.test}, Holm-adjusted)"
    if significant and r.delta < -tolerance:
        return "regressed", f"dropped {-r.delta:.1%} > tolerance {tolerance:.1%}, {p}"
    if significant and r.delta > tolerance:
        return "improved", f"gained {r.delta:.1%}, {p}"
    # A bootstrap of a small sample can collapse to a point (all differences equal): for
    # fractional outcomes "ok" also needs enough cases to detect a drop of the tolerance.
    powered = r.test == BINARY_TEST or (r.mde is not None and r.mde <= tolerance)
    if r.delta_low is not None and r.delta_low >= -tolerance and powered:
        return "ok", f"no drop beyond {tolerance:.1%} (interval from {r.delta_low:+.1%}), {p}"
    if significant:
        return "ok", f"the change ({r.delta:+.1%}) is within the tolerance {tolerance:.1%}, {p}"
    return "inconclusive", (
        f"a drop down to {r.delta_low:+.1%} cannot be ruled out and the change is not "
        f"significant ({p}); {r.paired} cases detect about {r.mde:.1%}"
        if r.mde is not None
        else f"not significant ({p})"
    )


def compare_runs(
    baseline: tuple[RunInfo, list[CaseRecord]],
    candidate: tuple[RunInfo, list[CaseRecord]],
    *,
    tolerance: float = 0.02,
    alpha: float = 0.05,
    seed: int = 0,
) -> Comparison:
    """Two runs, eval by eval and model by model (same model names on both sides).

    Two runs of one model each, different ones (a teacher's run and its student's), are
    compared model against model: that is the trade distillation makes.
    """
    base_info, base_cases = baseline
    cand_info, cand_cases = candidate
    base_models = {r.model for r in base_cases}
    cand_models = {r.model for r in cand_cases}
    across = len(base_models) == len(cand_models) == 1 and base_models != cand_models
    groups: dict[tuple[str, str], tuple[list[CaseRecord], list[CaseRecord]]] = defaultdict(
        lambda: ([], [])
    )
    for record in base_cases:
        groups[(record.eval, "" if across else record.model)][0].append(record)
    for record in cand_cases:
        groups[(record.eval, "" if across else record.model)][1].append(record)
    results = [
        compare_eval(
            name,
            base,
            cand,
            baseline_model=next(iter(base_models)) if across else model,
            candidate_model=next(iter(cand_models)) if across else model,
            tolerance=tolerance,
            seed=seed,
        )
        for (name, model), (base, cand) in sorted(groups.items())
    ]
    family = decide(results, tolerance=tolerance, alpha=alpha)
    return Comparison(
        baseline_run=base_info.run_id,
        candidate_run=cand_info.run_id,
        tolerance=tolerance,
        alpha=alpha,
        evals=results,
        family_size=family,
        notes=[*base_info.notes, *cand_info.notes],
    )


def compare_models(
    info: RunInfo,
    cases: list[CaseRecord],
    baseline_model: str,
    *,
    tolerance: float = 0.02,
    alpha: float = 0.05,
    seed: int = 0,
) -> Comparison:
    """One run: the baseline model against every other model, eval by eval."""
    by_eval: dict[str, dict[str, list[CaseRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in cases:
        by_eval[record.eval][record.model].append(record)
    results = []
    for name, models in sorted(by_eval.items()):
        base = models.get(baseline_model, [])
        for model, records in sorted(models.items()):
            if model == baseline_model:
                continue
            results.append(
                compare_eval(
                    name,
                    base,
                    records,
                    baseline_model=baseline_model,
                    candidate_model=model,
                    tolerance=tolerance,
                    seed=seed,
                )
            )
    family = decide(results, tolerance=tolerance, alpha=alpha)
    return Comparison(
        baseline_run=f"{info.run_id} ({baseline_model})",
        candidate_run=info.run_id,
        tolerance=tolerance,
        alpha=alpha,
        evals=results,
        family_size=family,
        notes=list(info.notes),
    )


Tone = Literal["bad", "warn", "good", "none"]


def headline(comparison: Comparison, failed_gates: int) -> tuple[Tone, str]:
    """The one-line verdict every report leads with, and its tone."""
    regressed = comparison.regressed
    if failed_gates or regressed:
        parts = []
        if regressed:
            parts.append(f"{len(regressed)} eval{'s' * (len(regressed) != 1)} regressed")
        if failed_gates:
            parts.append(f"{failed_gates} gate{'s' * (failed_gates != 1)} failed")
        return "bad", ", ".join(parts)
    if not comparison.evals:
        return "none", "No evals were compared"
    inconclusive = [e for e in comparison.evals if e.verdict == "inconclusive"]
    if inconclusive:
        return "warn", f"No regression found; {len(inconclusive)} inconclusive"
    improved = [e for e in comparison.evals if e.verdict == "improved"]
    if improved:
        return "good", f"No regression; {len(improved)} improved"
    return "good", "No regression"
