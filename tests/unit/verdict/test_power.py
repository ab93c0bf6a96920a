"""``modelopt plan``'s numbers: the exact power of the regression gate on pass/fail cases.

Three checks, each against something independent of the code under test: the critical
counts against the gate's own exact McNemar mid-p; the one-dimensional power sum against a
brute-force sum over every (lost, won) table; and the planned n against a seeded simulation
of the gate itself (McNemar mid-p and ``compare.verdict_for``) at several drops and rates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_modelopt.verdict.compare import EvalComparison, Side, verdict_for
from pytest_modelopt.verdict.power import (
    Flips,
    PlanError,
    _Critical,
    connor_cases,
    family_alpha,
    flips,
    plan,
    regression_power,
)
from pytest_modelopt.verdict.stats import mcnemar_midp

TOLERANCE = 0.02
# a side's own numbers play no part in the verdict on a difference
SIDE = Side(**{name: None for name in Side.model_fields} | {"model": "m", "cases": 0, "errors": 0})


def gate_regressed(lost: int, won: int, n: int, alpha: float) -> bool:
    """What the gate says about one comparison of n pass/fail cases, ``lost`` of which went
    from pass to fail and ``won`` the other way: the p and delta compare_eval computes,
    judged by verdict_for (one comparison, so Holm leaves p as it is)."""
    row = EvalComparison(
        eval="e",
        baseline=SIDE,
        candidate=SIDE,
        paired=n,
        delta=(won - lost) / n,
        delta_low=-1.0,
        delta_high=1.0,
        p_value=mcnemar_midp(lost, won),
        p_adjusted=mcnemar_midp(lost, won),
        test="McNemar mid-p",
        mde=0.0,
    )
    return verdict_for(row, TOLERANCE, alpha)[0] == "regressed"


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.05 / 60])
def test_critical_counts_match_the_exact_test(alpha: float) -> None:
    critical = _Critical(alpha)
    for flipped in range(301):
        significant = [c for c in range((flipped + 1) // 2) if mcnemar_midp(flipped - c, c) < alpha]
        assert critical(flipped) == (max(significant) if significant else -1), flipped
        assert significant == list(range(len(significant)))  # 0..critical, as power assumes


@pytest.mark.parametrize(
    ("n", "flip", "alpha"),
    [(30, Flips(0.2, 0.05), 0.05), (60, Flips(0.135, 0.085), 0.05), (45, Flips(0.1, 0.0), 0.01)],
)
def test_power_equals_the_sum_over_every_table(n: int, flip: Flips, alpha: float) -> None:
    rest = 1 - flip.lost - flip.won
    brute = 0.0
    for lost in range(n + 1):
        for won in range(n + 1 - lost):
            if not gate_regressed(lost, won, n, alpha):
                continue
            ways = math.comb(n, lost) * math.comb(n - lost, won)
            brute += ways * flip.lost**lost * flip.won**won * rest ** (n - lost - won)
    assert regression_power(n, flip, alpha=alpha, tolerance=TOLERANCE) == pytest.approx(
        brute, abs=1e-12
    )


def simulated_power(n: int, flip: Flips, alpha: float, seed: int, runs: int = 4000) -> float:
    """The share of ``runs`` seeded simulated comparisons the gate calls regressed."""
    rng = np.random.default_rng(seed)
    tables = rng.multinomial(n, [flip.lost, flip.won, 1 - flip.lost - flip.won], size=runs)
    return sum(gate_regressed(int(lost), int(won), n, alpha) for lost, won, _ in tables) / runs


@pytest.mark.parametrize(
    ("effect", "rate", "discordance", "family"),
    [
        (0.05, 0.9, None, 1),
        (0.10, 0.8, None, 1),
        (0.03, 0.95, None, 1),
        (0.20, 0.6, None, 1),
        (0.05, 1.0, None, 1),
        (0.05, 0.9, 0.08, 1),
        (0.10, 0.9, None, 60),
    ],
)
def test_simulated_power_at_the_planned_n_is_the_target(
    effect: float, rate: float, discordance: float | None, family: int
) -> None:
    flip = flips(rate, effect, discordance)
    alpha = family_alpha(0.05, family)
    planned = plan(flip, alpha=alpha, power=0.8, tolerance=TOLERANCE)
    assert planned.power >= 0.8
    assert regression_power(planned.cases - 1, flip, alpha=alpha, tolerance=TOLERANCE) < 0.8
    simulated = simulated_power(planned.cases, flip, alpha, seed=round(1000 * effect * rate))
    # 4000 runs: the Monte Carlo standard error at 0.8 is 0.0063
    assert simulated == pytest.approx(0.8, abs=0.03)
    assert simulated == pytest.approx(planned.power, abs=4 * math.sqrt(0.16 / 4000))
    # Connor's normal approximation is the right size (it ignores the tolerance)
    assert 0.7 < connor_cases(flip, alpha=alpha, power=0.8) / planned.cases < 1.3


def test_independence_is_the_cautious_assumption() -> None:
    independent = plan(flips(0.9, 0.05), alpha=0.05, power=0.8, tolerance=TOLERANCE)
    correlated = plan(flips(0.9, 0.05, 0.1), alpha=0.05, power=0.8, tolerance=TOLERANCE)
    assert flips(0.9, 0.05).discordance == pytest.approx(0.22)
    assert correlated.cases < independent.cases


def test_a_family_needs_more_cases() -> None:
    flip = flips(0.9, 0.05)
    one = plan(flip, alpha=family_alpha(0.05, 1), power=0.8, tolerance=TOLERANCE)
    sixty = plan(flip, alpha=family_alpha(0.05, 60), power=0.8, tolerance=TOLERANCE)
    assert family_alpha(0.05, 60) == pytest.approx(0.05 / 60)
    assert sixty.cases > 2 * one.cases


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plan(flips(0.9, 0.02), alpha=0.05, power=0.8, tolerance=0.02), "tolerance"),
        (lambda: flips(0.9, 0.05, 0.03), "at least the drop"),
        (lambda: flips(0.9, 0.05, 0.5), "must be within"),
        (lambda: flips(0.04, 0.05), "at most the pass rate"),
        (lambda: flips(1.2, 0.05), "within [0, 1]"),
        (lambda: family_alpha(0.05, 0), "at least one"),
        (lambda: plan(flips(0.9, 0.05), alpha=0.05, power=1.0, tolerance=0.02), "power"),
        (
            lambda: plan(flips(0.5, 0.021), alpha=0.05, power=0.8, tolerance=0.02, limit=1000),
            "more than 1,000",
        ),
    ],
)
def test_impossible_plans_say_why(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()
