"""From case records to one row per eval x model: the numbers every report shows.

With ``samples > 1`` the case is the unit: its score is the mean over its samples and its
pass rate the share of its samples that passed; the eval's pass rate is the mean of its
cases' pass rates. Errors are counted apart and never enter a pass rate.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from ..records.ids import utcnow
from ..records.models import (
    NOT_RUN_ERRORS,
    CaseRecord,
    EvalSummary,
    GraderSummary,
    RunInfo,
    RunSummary,
    Verdict,
)
from ..records.store import sort_cases
from .stats import mean, mean_interval, percentile, wilson_interval

if TYPE_CHECKING:
    from collections.abc import Iterable


def summarize_eval(eval_name: str, model: str, records: list[CaseRecord]) -> EvalSummary:
    by_case: dict[str, list[CaseRecord]] = defaultdict(list)
    for record in records:
        by_case[record.case_id].append(record)
    case_rates: list[float] = []
    case_scores: list[float] = []
    errors = pending = 0
    for samples in by_case.values():
        graded = [r for r in samples if r.status in ("passed", "failed")]
        errors += sum(r.status == "error" for r in samples)
        pending += sum(r.status == "pending" for r in samples)
        if graded:
            case_rates.append(sum(r.status == "passed" for r in graded) / len(graded))
            scores = [s for s in (r.score for r in graded) if s is not None]
            if scores:
                case_scores.append(sum(scores) / len(scores))
    latencies = [r.latency_s for r in records if r.latency_s is not None and r.calls]
    called = [r for r in records if r.calls]
    known = [r.cost for r in called if r.cost is not None]
    pass_rate = mean(case_rates)
    judged = [r for r in records if r.judge_calls]
    judge_known = [r.judge_cost for r in judged if r.judge_cost is not None]
    thresholds = {r.threshold for r in records}
    threshold = max((t for t in thresholds if t is not None), default=None)
    passed = sum(case_rates)
    strict = any(r.strict for r in records)
    interval = wilson_interval(passed, len(case_rates)) if case_rates else None
    gated = interval.low if strict and interval is not None else pass_rate
    score_interval = mean_interval(case_scores) if len(case_scores) > 1 else None
    return EvalSummary(
        eval=eval_name,
        model=model,
        cases=len(by_case),
        samples=len(records),
        graded=len(case_rates),
        passed=round(passed, 6),
        failed=round(len(case_rates) - passed, 6),
        errors=errors,
        pending=pending,
        pass_rate=pass_rate,
        mean_score=mean(case_scores),
        prompt_tokens=sum(r.usage.prompt_tokens for r in records),
        completion_tokens=sum(r.usage.completion_tokens for r in records),
        # the known part: None when nothing is known, or no call was made
        cost=float(sum(known)) if known else None,
        unpriced_calls=sum(r.unpriced for r in called),
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        threshold=threshold,
        verdict=_verdict(gated, threshold, len(records), pending, errors),
        strict=strict,
        pass_rate_low=interval.low if interval else None,
        pass_rate_high=interval.high if interval else None,
        score_low=score_interval.low if score_interval else None,
        score_high=score_interval.high if score_interval else None,
        fail_on=sorted({g for r in records for g in r.fail_on}),
        note=next((r.note for r in records if r.status == "pending" and r.note), None),
        judge_calls=sum(r.judge_calls for r in records),
        skipped=sum(r.status == "skipped" for r in records),
        errors_not_run=sum(
            r.status == "error" and r.error is not None and r.error.kind in NOT_RUN_ERRORS
            for r in records
        ),
        judge_cost=float(sum(judge_known)) if judge_known else None,
        unpriced_judge_calls=sum(r.unpriced_judges for r in judged),
        graders=_by_grader(records),
    )


def _by_grader(records: list[CaseRecord]) -> list[GraderSummary]:
    grades: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for record in records:
        if record.status in ("passed", "failed"):
            for grade in record.grades:
                grades[grade.name].append((grade.passed, grade.score))
    return [
        GraderSummary(
            name=name,
            graded=len(results),
            passed=sum(ok for ok, _ in results),
            pass_rate=sum(ok for ok, _ in results) / len(results),
            mean_score=sum(score for _, score in results) / len(results),
        )
        for name, results in grades.items()
    ]


def _verdict(
    pass_rate: float | None, threshold: float | None, total: int, pending: int, errors: int
) -> Verdict:
    if total and pending == total:
        return "pending"
    if pass_rate is None:
        return "error" if errors else "none"
    if threshold is None:
        return "none"
    return "pass" if pass_rate >= threshold else "fail"


def summarize(info: RunInfo, cases: Iterable[CaseRecord]) -> RunSummary:
    groups: dict[tuple[str, str], list[CaseRecord]] = defaultdict(list)
    messages: Counter[str] = Counter()
    for record in sort_cases(cases):
        groups[(record.eval, record.model)].append(record)
        if record.error is not None and record.status == "error":
            messages[f"{record.error.kind}: {record.error.message}"] += 1
    evals = [summarize_eval(name, model, recs) for (name, model), recs in groups.items()]
    return RunSummary(
        run=info, finished_at=utcnow(), evals=evals, error_messages=dict(messages.most_common())
    )


def failing_evals(summary: RunSummary) -> list[EvalSummary]:
    return [row for row in summary.evals if row.verdict == "fail"]
