"""Honest verdicts on small samples: a comparison with too few paired cases to see a drop of
the tolerance is *inconclusive*, never *ok* (docs/comparing.md states the rule).

Before, the paired bootstrap of two cases that agree collapsed to [0, 0] and read "ok".
"""

from __future__ import annotations

import random

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from pytest_modelopt.records.models import CaseRecord, GradeRecord, RunInfo
from pytest_modelopt.verdict import stats
from pytest_modelopt.verdict.compare import compare_runs


def _run(name: str, outcomes: list[bool]) -> tuple[RunInfo, list[CaseRecord]]:
    info = RunInfo(run_id=name, started_at="2026-12-01T00:00:00+00:00", plugin_version="0")
    cases = [
        CaseRecord(
            eval="e",
            nodeid=f"t[c{i}]",
            model="m",
            case_id=f"c{i}",
            status="passed" if ok else "failed",
            grades=[GradeRecord(name="g", score=float(ok), passed=ok)],
        )
        for i, ok in enumerate(outcomes)
    ]
    return info, cases


@pytest.mark.parametrize("n", [1, 2, 5, 13, 60])
def test_runs_that_agree_are_not_ok_until_there_are_enough_cases(n: int) -> None:
    same = [True] * n
    (row,) = compare_runs(_run("a", same), _run("b", same), tolerance=0.02).evals
    assert row.delta == 0
    assert row.delta_low is not None
    assert row.delta_low < -0.02  # the interval does not collapse to [0, 0]
    assert row.verdict == "inconclusive"
    assert "cannot be ruled out" in row.why


def test_enough_agreeing_cases_are_ok() -> None:
    same = [True] * 200
    (row,) = compare_runs(_run("a", same), _run("b", same), tolerance=0.02).evals
    assert row.verdict == "ok"
    # and a looser tolerance needs fewer: 13 cases rule out a 25% drop
    (row13,) = compare_runs(_run("a", [True] * 13), _run("b", [True] * 13), tolerance=0.25).evals
    assert row13.verdict == "ok"


def test_two_cases_with_a_detectable_effect_of_eighty_percent_are_inconclusive() -> None:
    """The example that read OK before: two cases, one lost."""
    (row,) = compare_runs(_run("a", [True, True]), _run("b", [True, False])).evals
    assert row.verdict == "inconclusive"
    assert row.mde is not None
    assert row.mde > 0.5


@pytest.mark.parametrize(
    ("both", "base_only", "cand_only", "neither"),
    [(5, 0, 0, 0), (0, 3, 0, 2), (10, 0, 4, 0), (3, 2, 2, 3), (0, 0, 4, 6)],
)
def test_newcombe_equals_the_independent_square_and_add_interval_when_phi_is_zero(
    both: int, base_only: int, cand_only: int, neither: int
) -> None:
    """With no usable correlation (an empty margin, or AD - BC within n/2 of 0) Newcombe's
    paired interval is his independent method 10, which statsmodels implements."""
    n = both + base_only + cand_only + neither
    cross = both * neither - base_only * cand_only
    margins = (
        (both + cand_only) * (base_only + neither) * (both + base_only) * (cand_only + neither)
    )
    assert margins == 0 or 0 <= cross <= n / 2
    ours = stats.newcombe_paired_interval(both, base_only, cand_only, neither)
    low, high = confint_proportions_2indep(
        both + cand_only, n, both + base_only, n, method="newcomb", compare="diff"
    )
    assert ours.low == pytest.approx(max(-1.0, low), abs=1e-9)
    assert ours.high == pytest.approx(min(1.0, high), abs=1e-9)


def _coverage(n: int, p_base: float, p_cand: float, agree: float, method: str) -> float:
    """Share of seeded simulated tables whose interval covers the true difference: each
    case keeps the baseline's outcome with probability ``agree``, else is drawn anew."""
    truth = (1 - agree) * (p_cand - p_base)
    rng = random.Random(1234)
    covered, trials = 0, 2000
    for _ in range(trials):
        base, cand = [], []
        for _ in range(n):
            b = rng.random() < p_base
            c = b if rng.random() < agree else rng.random() < p_cand
            base.append(float(b))
            cand.append(float(c))
        if method == "newcombe":
            pairs = list(zip(base, cand, strict=True))
            counts = (
                sum(b == c == 1 for b, c in pairs),
                sum(b > c for b, c in pairs),
                sum(c > b for b, c in pairs),
                sum(b == c == 0 for b, c in pairs),
            )
            low, high = stats.newcombe_paired_interval(*counts)
        else:
            _, (low, high), _ = stats.paired_bootstrap(base, cand, resamples=200, seed=1)
        covered += low <= truth <= high
    return covered / trials


@pytest.mark.parametrize("n", [5, 13])
def test_newcombe_keeps_its_coverage_where_the_bootstrap_does_not(n: int) -> None:
    """A candidate a little worse (a 5-point drop) that agrees with the baseline on most
    cases: the bootstrap's interval collapses whenever every pair agrees, and then misses
    the true drop."""
    newcombe = _coverage(n, 0.95, 0.45, agree=0.9, method="newcombe")
    bootstrap = _coverage(n, 0.95, 0.45, agree=0.9, method="bootstrap")
    assert newcombe >= 0.93
    assert bootstrap < 0.9
