"""``pytest_modelopt.verdict.stats`` against scipy and statsmodels, Miller's worked examples,
edge cases.

scipy and statsmodels are test-only references (the ``dev`` extra): the module itself is pure
Python, and these tests are what shows its hand-rolled quantiles are right.
"""

from __future__ import annotations

import gc
import math
import random
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from pytest_modelopt.verdict.stats import (
    Interval,
    clustered_means,
    exact_interval,
    holm_adjusted,
    holm_bonferroni,
    mcnemar_midp,
    mean,
    mean_interval,
    minimum_detectable_effect,
    normal_quantile,
    paired_bootstrap,
    paired_difference,
    percentile,
    t_quantile,
    wilson_interval,
)

CONFIDENCES = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]


# Tails and middle. Not within ~1e-6 of 1/2: there scipy's own t.ppf loses relative precision
# (t ~ 1e-7 comes back wrong in the 4th digit); test_t_quantile_near_the_median covers it.
T_PROBABILITIES = [
    1e-12, 1e-8, 1e-6, 1e-4, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.499,
    0.501, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-4, 1 - 1e-6,
]  # fmt: skip


def _counts(n: int) -> list[int]:
    return sorted({*range(0, n + 1, max(1, n // 12)), 1, n - 1, n} & set(range(n + 1)))


PROPORTION_GRID = [(k, n) for n in (1, 2, 3, 5, 10, 20, 50, 100, 300, 1000) for k in _counts(n)]


@pytest.mark.parametrize("p", [1e-300, 1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 1 - 1e-12])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert normal_quantile(p) == pytest.approx(scipy_stats.norm.ppf(p), rel=1e-12, abs=1e-15)


def test_normal_quantile_ends_and_domain() -> None:
    assert normal_quantile(0) == -math.inf
    assert normal_quantile(1) == math.inf
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="within"):
            normal_quantile(bad)


@pytest.mark.parametrize("df", range(1, 201))
def test_t_quantile_matches_scipy(df: int) -> None:
    for p in T_PROBABILITIES:
        assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-6), p


@pytest.mark.parametrize("df", [0.1, 0.5, 1.5, 2.5, 7.3, 250, 1000, 1e4, 1e5, 1e6])
def test_t_quantile_fractional_and_large_df(df: float) -> None:
    for p in T_PROBABILITIES:
        assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-6), p


@pytest.mark.parametrize("df", [1, 4, 30, 200])
def test_t_quantile_near_the_median(df: float) -> None:
    """Close to 1/2 the quantile is (p - 1/2) / density(0), and must keep relative precision."""
    density_at_0 = math.exp(
        math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - math.log(math.pi * df) / 2
    )
    for offset in (1e-7, 1e-9, 1e-12):
        for p in (0.5 - offset, 0.5 + offset):
            assert t_quantile(p, df) == pytest.approx((p - 0.5) / density_at_0, rel=1e-6)


def test_t_quantile_special_values() -> None:
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0, 3) == -math.inf
    assert t_quantile(1, 3) == math.inf
    assert t_quantile(0.975, math.inf) == normal_quantile(0.975)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-12)
    assert t_quantile(0.2, 7) == -t_quantile(0.8, 7)
    for bad_df in (0, -1, math.nan):
        with pytest.raises(ValueError, match="degrees of freedom"):
            t_quantile(0.5, bad_df)
    with pytest.raises(ValueError, match="within"):
        t_quantile(1.5, 3)


@pytest.mark.parametrize(("successes", "n"), PROPORTION_GRID)
def test_wilson_matches_statsmodels(successes: int, n: int) -> None:
    for confidence in CONFIDENCES:
        expected = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
        assert wilson_interval(successes, n, confidence) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("successes", "n"), [(0.5, 1), (7.5, 20), (13.25, 40), (99.9, 100)])
def test_wilson_fractional_successes_is_the_same_formula(successes: float, n: int) -> None:
    """A sum of per-case pass rates enters as is: p̂ = successes / n, n = the number of cases."""
    expected = proportion_confint(successes, n, method="wilson")
    assert wilson_interval(successes, n) == pytest.approx(expected, abs=1e-12)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)
    assert wilson_interval(0, 30).low == 0.0  # all fail: exactly 0, not -1e-17
    assert wilson_interval(30, 30).high == 1.0  # all pass: exactly 1, not 0.9999999999999999
    z2 = normal_quantile(0.975) ** 2
    assert wilson_interval(30, 30).low == pytest.approx(30 / (30 + z2), rel=1e-12)
    for successes, n in ((-1, 10), (11, 10), (math.nan, 10), (0, -1)):
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(successes, n)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(3, 10, confidence=1.0)


@pytest.mark.parametrize(("successes", "n"), PROPORTION_GRID)
def test_exact_matches_statsmodels_beta(successes: int, n: int) -> None:
    for confidence in CONFIDENCES:
        expected = proportion_confint(successes, n, alpha=1 - confidence, method="beta")
        assert exact_interval(successes, n, confidence) == pytest.approx(expected, abs=1e-11)


def test_exact_edges() -> None:
    assert exact_interval(0, 0) == Interval(0.0, 1.0)
    # all green: the rule of three, the failure rate's upper bound is about 3 / n
    all_pass = exact_interval(30, 30)
    assert all_pass.high == 1.0
    assert 1 - all_pass.low == pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-12)
    assert exact_interval(0, 30) == Interval(0.0, pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-12))
    # Clopper-Pearson is never narrower than Wilson at the same level here
    for k in range(21):
        exact, wilson = exact_interval(k, 20), wilson_interval(k, 20)
        assert exact.low <= wilson.low + 1e-12
        assert exact.high >= wilson.high - 1e-12
    with pytest.raises(ValueError, match="integers"):
        exact_interval(2.5, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integers"):
        exact_interval(11, 10)


def _sample(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.choice([0.0, 0.25, 0.5, 1.0]) * rng.random() for _ in range(n)]


@pytest.mark.parametrize(
    "values",
    [[0.0, 1.0], [1.0, 1.0, 0.0], [0.2, 0.4, 0.9], _sample(1, 5), _sample(2, 30), _sample(3, 400)],
)
def test_mean_interval_matches_scipy(values: list[float]) -> None:
    for confidence in CONFIDENCES:
        expected = scipy_stats.t.interval(
            confidence, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
        )
        assert mean_interval(values, confidence) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mean_interval_edges() -> None:
    for too_few in ([], [0.7]):
        assert all(math.isnan(end) for end in mean_interval(too_few))  # undefined, not 0-wide
    assert mean_interval([1.0] * 10) == Interval(1.0, 1.0)  # all pass
    assert mean_interval([0.0] * 10) == Interval(0.0, 0.0)  # all fail
    assert all(math.isnan(end) for end in mean_interval([0.5, math.nan, 1.0]))
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([0.0, 1.0], confidence=0)


def test_clustered_means_average_within_each_case_first() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.5]
    cases = ["b", "a", "b", "c", "a", ("tuple", 1)]
    assert clustered_means(values, cases) == [1.0, 0.0, 1.0, 0.5]  # first-appearance order
    assert clustered_means([], []) == []
    assert clustered_means([0.25, 0.75], [None, None]) == [0.5]
    # three samples of one case are one observation, not three
    assert len(clustered_means([1.0, 1.0, 1.0, 0.0], [1, 1, 1, 2])) == 2
    assert math.isnan(clustered_means([math.nan, 1.0], ["x", "x"])[0])
    with pytest.raises(ValueError, match="cluster labels"):
        clustered_means([1.0, 0.0], ["a"])


def _reference_midp(b: int, c: int) -> float:
    """statsmodels' exact McNemar p minus the point probability, which is the mid-p...

    ...except when b == c: statsmodels caps 2·P(X ≤ k) at 1 before anything can be taken off,
    while Fagerland et al.'s mid-p, 2·[P(X ≤ k) - P(X = k)/2], is then exactly 1.
    """
    if b == c:
        return 1.0
    exact = float(mcnemar([[10, b], [c, 10]], exact=True).pvalue)
    return exact - float(scipy_stats.binom.pmf(min(b, c), b + c, 0.5))


MCNEMAR_GRID = [(b, c) for b in range(0, 41, 3) for c in range(0, 41, 4)] + [
    (0, 1), (1, 0), (0, 5), (5, 0), (3, 3), (10, 30), (120, 80), (400, 470), (1000, 1100),
]  # fmt: skip


@pytest.mark.parametrize(("b", "c"), MCNEMAR_GRID)
def test_mcnemar_midp_matches_statsmodels_and_scipy(b: int, c: int) -> None:
    k, m = min(b, c), b + c
    scipy_midp = min(
        1.0, 2 * (scipy_stats.binom.cdf(k, m, 0.5) - scipy_stats.binom.pmf(k, m, 0.5) / 2)
    )
    midp = mcnemar_midp(b, c)
    if m == 0:
        assert midp == 1.0
        return
    assert midp == pytest.approx(_reference_midp(b, c), rel=1e-9, abs=1e-15)
    assert midp == pytest.approx(scipy_midp, rel=1e-9, abs=1e-15)
    assert midp == mcnemar_midp(c, b)
    assert midp <= float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)  # less conservative


def test_mcnemar_midp_edges() -> None:
    assert mcnemar_midp(0, 0) == 1.0  # nothing discordant: no evidence
    assert mcnemar_midp(7, 7) == 1.0
    assert mcnemar_midp(0, 1) == 0.5  # 2·(1/2) - 1/2
    assert mcnemar_midp(5, 0) == 1 / 32  # five regressions, no fixes: 2·2^-5 - 2^-5
    for b, c in ((-1, 2), (1.5, 2)):
        with pytest.raises(ValueError, match="counts"):
            mcnemar_midp(b, c)  # type: ignore[arg-type]


def _correlated_runs(seed: int, n: int, shift: float) -> tuple[list[float], list[float]]:
    """Per-case scores of two models sharing each case's difficulty; true difference ``shift``."""
    rng = random.Random(seed)
    baseline, candidate = [], []
    for _ in range(n):
        difficulty = rng.random()
        baseline.append(difficulty + rng.gauss(0, 0.2))
        candidate.append(difficulty + shift + rng.gauss(0, 0.2))
    return baseline, candidate


@pytest.mark.parametrize(("n", "shift"), [(2, 0.3), (10, 0.1), (50, -0.05), (300, 0.02)])
def test_paired_difference_matches_scipy(n: int, shift: float) -> None:
    baseline, candidate = _correlated_runs(n, n, shift)
    differences = np.subtract(candidate, baseline)
    for confidence in (0.8, 0.95, 0.99):
        centre, interval = paired_difference(baseline, candidate, confidence)
        assert centre == pytest.approx(differences.mean(), rel=1e-12)
        expected = scipy_stats.ttest_rel(candidate, baseline).confidence_interval(confidence)
        assert interval == pytest.approx((expected.low, expected.high), rel=1e-9)


def test_paired_difference_edges() -> None:
    runs = [1.0, 0.0, 1.0, 0.5]
    assert paired_difference(runs, runs) == (0.0, Interval(0.0, 0.0))  # identical runs
    centre, interval = paired_difference([], [])
    assert math.isnan(centre)
    assert all(math.isnan(end) for end in interval)
    centre, interval = paired_difference([0.0], [1.0])
    assert centre == 1.0
    assert all(math.isnan(end) for end in interval)
    with pytest.raises(ValueError, match="pair"):
        paired_difference([1.0], [1.0, 0.0])


def test_paired_bootstrap_is_reproducible_with_a_seed() -> None:
    baseline, candidate = _correlated_runs(7, 80, 0.05)
    first = paired_bootstrap(baseline, candidate, seed=42)
    assert paired_bootstrap(baseline, candidate, seed=42) == first
    other = paired_bootstrap(baseline, candidate, seed=43)
    assert other != first
    assert other[0] == first[0]  # the observed difference does not depend on the seed
    width = first[1].high - first[1].low
    assert other[1] == pytest.approx(first[1], abs=0.1 * width)
    assert other[2] == pytest.approx(first[2], abs=0.03)


def test_paired_bootstrap_covers_the_true_difference() -> None:
    baseline, candidate = _correlated_runs(11, 300, 0.1)
    _, interval, p_value = paired_bootstrap(baseline, candidate, seed=1)
    assert interval.low < 0.1 < interval.high
    assert interval.low > 0
    assert p_value < 0.01
    # and the 95% interval's coverage over many synthetic suites is near 95%
    hits = 0
    for seed in range(200):
        baseline, candidate = _correlated_runs(1000 + seed, 40, 0.1)
        low, high = paired_bootstrap(baseline, candidate, resamples=300, seed=seed)[1]
        hits += low <= 0.1 <= high
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize(("n", "shift"), [(30, 0.0), (100, 0.05), (400, -0.03)])
def test_paired_bootstrap_agrees_with_scipy(n: int, shift: float) -> None:
    baseline, candidate = _correlated_runs(n + 5, n, shift)
    observed, interval, _ = paired_bootstrap(baseline, candidate, resamples=4000, seed=3)
    reference = scipy_stats.bootstrap(
        (np.array(baseline), np.array(candidate)),
        lambda b, c, axis: np.mean(c - b, axis=axis),
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=4000,
        rng=np.random.default_rng(3),
    ).confidence_interval
    standard_error = float(np.std(np.subtract(candidate, baseline), ddof=1)) / math.sqrt(n)
    assert observed == pytest.approx(float(np.mean(np.subtract(candidate, baseline))), rel=1e-12)
    assert interval.low == pytest.approx(reference.low, abs=0.15 * standard_error)
    assert interval.high == pytest.approx(reference.high, abs=0.15 * standard_error)


def test_paired_bootstrap_p_value_definition() -> None:
    # a clear effect: no resample on the other side, so p is the floor 2 / (resamples + 1)
    baseline, candidate = [0.0] * 50, [1.0] * 50
    assert paired_bootstrap(baseline, candidate, resamples=999) == (1.0, Interval(1.0, 1.0), 0.002)
    assert paired_bootstrap(candidate, baseline, resamples=999)[2] == 0.002
    # by hand: one regression in 10 cases; resamples that miss it sit on 0, the other side
    baseline, candidate = [1.0] + [0.0] * 9, [0.0] * 10
    observed, _, p_value = paired_bootstrap(baseline, candidate, resamples=500, seed=5)
    assert observed == -0.1
    rng = random.Random(5)
    resampled = [sum(rng.choices([-1.0] + [0.0] * 9, k=10)) / 10 for _ in range(500)]
    other_side = sum(m >= 0 for m in resampled)
    assert p_value == min(1.0, 2 * (other_side + 1) / 501)
    assert p_value > 0.5  # one discordant case is no evidence


def test_paired_bootstrap_edges() -> None:
    runs = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert paired_bootstrap(runs, runs) == (0.0, Interval(0.0, 0.0), 1.0)  # identical runs
    for baseline, candidate in (([], []), ([1.0, math.nan], [1.0, 0.0])):
        observed, interval, p_value = paired_bootstrap(baseline, candidate)
        assert math.isnan(observed)
        assert math.isnan(p_value)
        assert all(math.isnan(end) for end in interval)
    assert paired_bootstrap([0.0], [1.0], resamples=9)[1] == Interval(1.0, 1.0)
    with pytest.raises(ValueError, match="pair"):
        paired_bootstrap([1.0], [])
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap([1.0], [0.0], resamples=0)


def test_mde_reproduces_millers_worked_examples() -> None:
    # Example 1: ω² = 1/9, no within-question noise: 969 questions detect δ = 3 points.
    assert minimum_detectable_effect(969, sd_diff=1 / 3) == pytest.approx(0.03, abs=5e-6)
    assert minimum_detectable_effect(968, sd_diff=1 / 3) > 0.03
    # Example 2: σ_A² = σ_B² = 1/6, ω² = 1/9, n = 198: K = 1 → 13.2%, K = 10 → 7.5% (7.57)
    k1 = minimum_detectable_effect(198, sd_diff=math.sqrt(1 / 9 + 1 / 6 + 1 / 6))
    k10 = minimum_detectable_effect(198, sd_diff=math.sqrt(1 / 9 + 1 / 60 + 1 / 60))
    assert k1 == pytest.approx(0.132, abs=1e-3)
    assert k10 == pytest.approx(0.0757, abs=1e-3)


@pytest.mark.parametrize(
    ("n", "paired_10", "paired_20", "unpaired"),
    [(50, 0.125, 0.177, 0.224), (100, 0.089, 0.125, 0.158), (200, 0.063, 0.089, 0.112)],
)
def test_mde_matches_the_research_table(
    n: int, paired_10: float, paired_20: float, unpaired: float
) -> None:
    """Paired MDE ≈ 2.80·√(ψ/n) for discordance ψ; unpaired at p = 0.8 uses sd² = 2p(1-p)."""
    assert minimum_detectable_effect(n, sd_diff=math.sqrt(0.1)) == pytest.approx(
        paired_10, abs=6e-4
    )
    assert minimum_detectable_effect(n, sd_diff=math.sqrt(0.2)) == pytest.approx(
        paired_20, abs=6e-4
    )
    unpaired_sd = math.sqrt(2 * 0.8 * 0.2)
    assert minimum_detectable_effect(n, sd_diff=unpaired_sd) == pytest.approx(unpaired, abs=6e-4)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.8, 0.95, 1.0])
def test_mde_from_a_baseline_rate(rate: float) -> None:
    z = normal_quantile(0.975) + normal_quantile(0.8)
    for n in (10, 50, 200, 1000, 10**6):
        delta = minimum_detectable_effect(n, baseline_rate=rate)
        # the documented definition: sd² = p(1-p) + q(1-q), q = p moved δ towards 1/2
        q = rate - delta if rate >= 0.5 else rate + delta
        sd = math.sqrt(rate * (1 - rate) + q * (1 - q))
        assert delta == pytest.approx(z * sd / math.sqrt(n), rel=1e-9)
        if delta <= abs(2 * rate - 1):  # q no further from 1/2 than p: at least the naive sd
            assert delta >= z * math.sqrt(2 * rate * (1 - rate) / n) * (1 - 1e-12)
        assert delta > 0  # an all-pass baseline does not make every regression detectable
    if 0 < rate < 1:  # for small δ it is the uncorrelated √(2p(1-p))
        naive = z * math.sqrt(2 * rate * (1 - rate) / 10**6)
        assert minimum_detectable_effect(10**6, baseline_rate=rate) == pytest.approx(
            naive, rel=0.01
        )
    else:
        assert minimum_detectable_effect(100, baseline_rate=rate) == pytest.approx(
            z**2 / (100 + z**2)
        )


def test_mde_edges() -> None:
    assert minimum_detectable_effect(0, sd_diff=0.5) == math.inf
    assert minimum_detectable_effect(0, baseline_rate=0.9) == math.inf
    assert minimum_detectable_effect(100, sd_diff=0.0) == 0.0  # identical runs
    assert minimum_detectable_effect(100, sd_diff=0.4, alpha=0.01) > minimum_detectable_effect(
        100, sd_diff=0.4
    )
    assert minimum_detectable_effect(100, sd_diff=0.4, power=0.9) > minimum_detectable_effect(
        100, sd_diff=0.4
    )
    with pytest.raises(ValueError, match="sd_diff or baseline_rate"):
        minimum_detectable_effect(100)
    # a known sd wins over the rate's worst case
    both = minimum_detectable_effect(100, sd_diff=0.3, baseline_rate=0.8)
    assert both == minimum_detectable_effect(100, sd_diff=0.3)
    assert minimum_detectable_effect(100, sd_diff=None, baseline_rate=0.8) == pytest.approx(
        minimum_detectable_effect(100, baseline_rate=0.8)
    )
    for bad in (
        {"n": -1, "sd_diff": 0.3},
        {"n": 10, "sd_diff": -0.3},
        {"n": 10, "sd_diff": math.nan},
        {"n": 10, "baseline_rate": 1.2},
        {"n": 10, "sd_diff": 0.3, "alpha": 0.0},
        {"n": 10, "sd_diff": 0.3, "power": 1.0},
    ):
        with pytest.raises(ValueError, match=r"must|need"):
            minimum_detectable_effect(**bad)  # type: ignore[arg-type]


HOLM_CASES = [
    [0.01, 0.04, 0.03, 0.005],
    [0.01, 0.02, 0.03, 0.04, 0.05],
    [0.2, 0.001, 0.5, 0.012, 0.013, 0.9, 0.0],
    [0.05, 0.05, 0.05],
    [0.012, 0.012, 0.04],  # ties at a step boundary
    [1.0, 1.0],
    [0.0],
    [0.03],
    [0.7, 0.01],
    [random.Random(seed).random() ** 3 for seed in range(30)],
]


@pytest.mark.parametrize("p_values", HOLM_CASES)
def test_holm_matches_statsmodels(p_values: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    # statsmodels' holm branch runs gc.collect() on every call: ~0.1 s each in a pytest process
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
    for alpha in (0.01, 0.05, 0.1, 0.2):
        reject, adjusted, _, _ = multipletests(p_values, alpha=alpha, method="holm")
        assert holm_bonferroni(p_values, alpha) == reject.tolist()
        assert holm_adjusted(p_values) == pytest.approx(adjusted.tolist(), rel=1e-12, abs=1e-15)
        assert holm_bonferroni(p_values, alpha) == [p <= alpha for p in holm_adjusted(p_values)]


def test_holm_edges() -> None:
    assert holm_bonferroni([]) == []
    assert holm_adjusted([]) == []
    adjusted = holm_adjusted([0.3, 0.01, 0.02, 0.9])
    assert adjusted == pytest.approx([0.6, 0.04, 0.06, 0.9])
    assert all(p <= 1 for p in holm_adjusted([0.6, 0.7, 0.8]))
    for bad in ([0.1, math.nan], [1.5], [-0.1]):
        with pytest.raises(ValueError, match="p-value"):
            holm_adjusted(bad)
        with pytest.raises(ValueError, match="p-value"):
            holm_bonferroni(bad)
    with pytest.raises(ValueError, match="alpha"):
        holm_bonferroni([0.1], alpha=0)


def test_percentile_and_mean_unchanged() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == float(np.percentile([3, 1, 2, 4], 50))
    assert percentile([3.0, 1.0, 2.0, 4.0], 90) == pytest.approx(np.percentile([3, 1, 2, 4], 90))
    assert mean([]) is None
    assert mean([1.0, 2.0]) == 1.5


@pytest.mark.parametrize("values", [[1.0], [3.0, 1.0, 2.0], [0.5, 9.0, 2.5, 2.5, 7.0, 1.0]])
def test_percentile_matches_linear_interpolation(values: list[float]) -> None:
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    if len(values) > 1:
        expected = statistics.quantiles(values, n=20, method="inclusive")[18]
        assert percentile(values, 95) == pytest.approx(expected)
    assert percentile([], 50) is None
