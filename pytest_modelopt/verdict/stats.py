"""Statistics for eval results: pure functions, no pytest, no numpy required.

LLM-app suites are small (tens to hundreds of cases), so the defaults are the small-sample-safe
methods: Wilson and Clopper-Pearson for pass rates, Student t (not z) for means, exact mid-p
McNemar for paired pass/fail, a seeded paired bootstrap for any other paired metric (Miller 2024,
"Adding Error Bars to Evals", arXiv:2411.00640; Bowyer et al. 2025, arXiv:2503.01747). The
quantiles are computed here, from the standard library alone, so the plugin needs no scipy.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

_STANDARD_NORMAL = NormalDist()
_EPSILON = 1e-15  # relative precision the continued fraction and the root finders aim for
_MAX_ITERATIONS = 100_000  # of the continued fraction; it needs about sqrt(max(a, b)) terms


class Interval(NamedTuple):
    """A closed interval ``[low, high]``; both NaN when the data cannot define one."""

    low: float
    high: float


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default; None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# --- quantiles ------------------------------------------------------------------------------


def normal_quantile(p: float) -> float:
    """The inverse standard normal CDF; ``-inf`` at 0 and ``inf`` at 1.

    ``statistics.NormalDist.inv_cdf`` implements Wichura's AS 241 (1988), accurate to about
    1e-16, so there is no reason to carry our own.
    """
    _check_probability(p, "p")
    if p == 0:
        return -math.inf
    if p == 1:
        return math.inf
    return _STANDARD_NORMAL.inv_cdf(p)


def t_quantile(p: float, df: float) -> float:
    """The inverse CDF of Student's t with ``df`` > 0 degrees of freedom (fractional, or inf).

    Uses P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t²) (Abramowitz & Stegun 26.7.1 and
    26.5.27) and inverts the regularized incomplete beta function numerically, as inspect_ai
    does: series approximations of t are worst at small df, the case t intervals exist for.
    Near the median it solves for y = 1 - x = t² / (df + t²) instead, so that small t keep
    their relative precision.
    """
    _check_probability(p, "p")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p in (0, 1):
        return math.inf if p == 1 else -math.inf
    if p == 0.5:
        return 0.0
    if math.isinf(df):
        return normal_quantile(p)
    two_tailed = 2 * min(p, 1 - p)  # P(|T| > |t|); 1 - p is exact for p >= 1/2
    guess = _cornish_fisher_t(abs(normal_quantile(two_tailed / 2)), df) ** 2
    if two_tailed < 0.5:
        x = _inverse_regularized_beta(two_tailed, df / 2, 0.5, [df / (df + guess)])
        magnitude = math.sqrt(df * (1 - x) / x)
    else:
        y = _inverse_regularized_beta(1 - two_tailed, 0.5, df / 2, [guess / (df + guess)])
        magnitude = math.sqrt(df * y / (1 - y))
    return magnitude if p > 0.5 else -magnitude


def _cornish_fisher_t(z: float, df: float) -> float:
    """Abramowitz & Stegun 26.7.5: t from the normal quantile z, a starting point for t_quantile."""
    z2 = z * z
    terms = (
        (z2 + 1) / 4,
        ((5 * z2 + 16) * z2 + 3) / 96,
        (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384,
        ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160,
    )
    return z * (1 + sum(term / df ** (power + 1) for power, term in enumerate(terms)))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by the continued fraction of DLMF 8.17.22, evaluated by the modified Lentz method.

    The fraction converges fast for x < (a + 1) / (a + b + 2); above that the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) (DLMF 8.17.4) is used.
    """
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_beta(1.0 - x, b, a)
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, _MAX_ITERATIONS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < _EPSILON:
            break
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    return math.exp(log_front) * fraction / a


def _inverse_regularized_beta(
    target: float, a: float, b: float, guesses: Sequence[float] = ()
) -> float:
    """The x in (0, 1) with I_x(a, b) = target (0 < target < 1): the Beta(a, b) quantile.

    Newton's method on the exact derivative, the Beta density, safeguarded by bisection so it
    cannot leave the bracket. It starts from the best of ``guesses`` and of the power-law
    behaviour at either end, I_x ≈ x^a / (a·B(a, b)) near 0 and 1 - I_x ≈ (1 - x)^b / (b·B(a, b))
    near 1, and for a, b > 1 also Abramowitz & Stegun 26.5.22's normal approximation.
    """
    log_beta = _log_beta(a, b)
    starts = [
        *guesses,
        math.exp((math.log(target) + math.log(a) + log_beta) / a),
        -math.expm1((math.log1p(-target) + math.log(b) + log_beta) / b),
    ]
    if a > 1 and b > 1:
        y = -normal_quantile(target)
        h = 2 / (1 / (2 * a - 1) + 1 / (2 * b - 1))
        lam = (y * y - 3) / 6
        w = y * math.sqrt(h + lam) / h - (1 / (2 * b - 1) - 1 / (2 * a - 1)) * (
            lam + 5 / 6 - 2 / (3 * h)
        )
        starts.append(a / (a + b * math.exp(min(2 * w, 700.0))))
    low, high = 0.0, 1.0
    best, best_error = a / (a + b), math.inf
    for start in starts:
        if low < start < high:
            error = _regularized_beta(start, a, b) - target
            if error == 0:
                return start
            if error < 0:
                low = start
            else:
                high = start
            if abs(error) < abs(best_error):
                best, best_error = start, error
    x = best if math.isfinite(best_error) else (low + high) / 2
    error = best_error if math.isfinite(best_error) else _regularized_beta(x, a, b) - target
    for _ in range(1000):
        log_density = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - log_beta
        step = error * math.exp(min(-log_density, 700.0))
        if abs(step) <= 4 * _EPSILON * x:
            return x - step
        candidate = x - step
        if not low < candidate < high:
            candidate = (low + high) / 2  # Newton left the bracket: bisect instead
            if candidate in (low, high):
                return candidate
        x = candidate
        error = _regularized_beta(x, a, b) - target
        if error == 0:
            return x
        if error < 0:
            low = x
        else:
            high = x
    return x


def _check_probability(p: float, name: str) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be within [0, 1], got {p}")


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")


# --- intervals ------------------------------------------------------------------------------


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson's score interval for a pass rate (Wilson 1927, JASA 22:209).

    Unlike the Wald p̂ ± z·SE it never leaves [0, 1] and keeps its coverage at small n and near
    0 or 1 (Brown, Cai & DasGupta 2001, Statist. Sci. 16:101).

    ``successes`` may be fractional: with several samples per case pass ``n`` = the number of
    cases and ``successes`` = the sum of the per-case pass rates, so p̂ is the mean case pass
    rate and the case is the unit (Miller 2024 §3.1). A score in [0, 1] with mean p has variance
    at most p(1 - p), so this is conservative for fractional rates; ``mean_interval`` is the
    tighter t interval for them. ``n == 0`` gives [0, 1].
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Interval(0.0, 1.0)
    z = normal_quantile(0.5 + confidence / 2)
    rate = successes / n
    z2n = z * z / n
    centre = (rate + z2n / 2) / (1 + z2n)
    half_width = z / (1 + z2n) * math.sqrt(rate * (1 - rate) / n + z2n / (4 * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return Interval(low, high)


def exact_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Clopper-Pearson interval (Clopper & Pearson 1934, Biometrika 26:404).

    [Beta⁻¹(α/2; k, n-k+1), Beta⁻¹(1-α/2; k+1, n-k)], the bounds being 0 at k = 0 and 1 at
    k = n: coverage is at least the nominal level for every true rate, at the price of being
    conservative. Use it when a guarantee matters (launching a paid job on a threshold).
    ``n == 0`` gives [0, 1].
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n or successes != int(successes):
        raise ValueError(f"need integers 0 <= successes <= n, got successes={successes}, n={n}")
    alpha = 1 - confidence
    low = (
        0.0
        if successes == 0
        else _inverse_regularized_beta(alpha / 2, successes, n - successes + 1)
    )
    high = (
        1.0
        if successes == n
        else _inverse_regularized_beta(1 - alpha / 2, successes + 1, n - successes)
    )
    return Interval(low, high)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """mean ± t_{n-1}·s/√n (Miller 2024 eq. 1 and 3, with t for z as small n needs).

    Fewer than two values cannot estimate a spread, so the interval is undefined: (nan, nan),
    never a zero-width interval that looks certain. NaN values propagate the same way: drop
    unscored cases before calling.
    """
    _check_confidence(confidence)
    n = len(values)
    if n < 2:
        return Interval(math.nan, math.nan)
    centre = math.fsum(values) / n
    variance = math.fsum((v - centre) ** 2 for v in values) / (n - 1)
    half_width = t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(variance / n)
    return Interval(centre - half_width, centre + half_width)


def clustered_means(values: Sequence[float], clusters: Sequence[Hashable]) -> list[float]:
    """The mean of ``values`` within each cluster, in order of each cluster's first appearance.

    With several samples per case, average within the case first and treat the case as the
    unit: pooling all samples as independent understates the standard error (Miller 2024 §3.1).
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    groups: dict[Hashable, list[float]] = {}
    for value, cluster in zip(values, clusters, strict=True):
        groups.setdefault(cluster, []).append(value)
    return [math.fsum(group) / len(group) for group in groups.values()]


# --- paired comparisons ---------------------------------------------------------------------


def mcnemar_midp(b: int, c: int) -> float:
    """Two-sided mid-p McNemar test (Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91).

    ``b`` = cases the baseline passed and the candidate failed, ``c`` = the reverse. Under "equal
    pass rates" min(b, c) ~ Binomial(b + c, 1/2); mid-p = 2·[P(X ≤ k) - P(X = k)/2], k = min(b, c).
    It is as easy as the exact test but not over-conservative, and kept the nominal level in all
    of Fagerland et al.'s scenarios. It equals 1 when b == c, and when b + c == 0 (no evidence).
    Exact integer arithmetic: no rounding until the final division.
    """
    if b < 0 or c < 0 or b != int(b) or c != int(c):
        raise ValueError(f"need non-negative integer counts, got b={b}, c={c}")
    discordant = int(b + c)
    k = int(min(b, c))
    if discordant == 0:
        return 1.0
    term = 1  # comb(discordant, i), updated in place
    at_most_k = 0
    for i in range(k + 1):
        if i:
            term = term * (discordant - i + 1) // i
        at_most_k += term
    return min(1.0, (2 * at_most_k - term) / (1 << discordant))


def newcombe_paired_interval(
    both: int, baseline_only: int, candidate_only: int, neither: int, confidence: float = 0.95
) -> Interval:
    """Interval for the difference of paired pass rates, candidate - baseline (Newcombe 1998,
    Statist. Med. 17:2635, method 10: Wilson score intervals for the two marginal rates,
    combined by "square-and-add" with the correlation between the two sides).

    The four counts are the paired table: ``both`` cases passed on both sides,
    ``baseline_only`` passed only on the baseline, ``candidate_only`` only on the candidate,
    ``neither`` on neither. Unlike a bootstrap of a small sample, or the Wald interval, it
    never collapses to a point: two cases that agree give about [-0.66, +0.66], so a sample
    too small to see a drop of the tolerance cannot be called "no regression". The
    correlation φ is Newcombe's: (AD - BC) / √(product of the margins), with AD - BC reduced
    by n/2 towards 0 when positive, and φ = 0 when a margin is empty (as in Altman et al.,
    Statistics with Confidence, 2nd ed., 2000, ch. 6).
    """
    counts = (both, baseline_only, candidate_only, neither)
    if any(c < 0 or c != int(c) for c in counts):
        raise ValueError(f"need non-negative integer counts, got {counts}")
    _check_confidence(confidence)
    n = both + baseline_only + candidate_only + neither
    if n == 0:
        return Interval(-1.0, 1.0)
    p_cand = (both + candidate_only) / n
    p_base = (both + baseline_only) / n
    low_cand, high_cand = wilson_interval(both + candidate_only, n, confidence)
    low_base, high_base = wilson_interval(both + baseline_only, n, confidence)
    margins = (
        (both + candidate_only)
        * (baseline_only + neither)
        * (both + baseline_only)
        * (candidate_only + neither)
    )
    phi = 0.0
    if margins > 0:
        cross = both * neither - candidate_only * baseline_only
        corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
        phi = corrected / math.sqrt(margins)
    delta = p_cand - p_base
    below = math.sqrt(
        (p_cand - low_cand) ** 2
        - 2 * phi * (p_cand - low_cand) * (high_base - p_base)
        + (high_base - p_base) ** 2
    )
    above = math.sqrt(
        (p_base - low_base) ** 2
        - 2 * phi * (p_base - low_base) * (high_cand - p_cand)
        + (high_cand - p_cand) ** 2
    )
    return Interval(max(-1.0, delta - below), min(1.0, delta + above))


def paired_difference(
    baseline: Sequence[float], candidate: Sequence[float], confidence: float = 0.95
) -> tuple[float, Interval]:
    """Mean of d_i = candidate_i - baseline_i with its t interval (Miller 2024 eq. 7).

    SE = sd(d)/√n with n - 1 degrees of freedom: pairing removes the between-case variance the
    two runs share, a free reduction whenever their scores correlate. Cases are paired by index.
    The interval is (nan, nan) for fewer than two pairs; the mean is nan for none.
    """
    differences = _differences(baseline, candidate)
    centre = math.fsum(differences) / len(differences) if differences else math.nan
    return centre, mean_interval(differences, confidence)


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, Interval, float]:
    """Paired bootstrap of the mean difference candidate - baseline (Koehn 2004, EMNLP).

    Cases (paired by index) are resampled with replacement ``resamples`` times from
    ``random.Random(seed)``, so the same inputs and seed give the same output. Returns
    (observed mean difference, percentile interval of the resampled means, two-sided p):

    * the interval's ends are the α/2 and 1 - α/2 percentiles (linear interpolation) of the
      resampled mean differences, Efron & Tibshirani's (1993, ch. 13) percentile interval;
    * p = min(1, 2·(k + 1)/(resamples + 1)), k = the number of resampled mean differences on the
      other side of 0 from the observed one, 0 itself included (≤ 0 when the observed is positive,
      ≥ 0 when negative); p = 1 when the observed difference is 0. This inverts the percentile
      interval (p < α roughly when it excludes 0); the +1 keeps a Monte Carlo p from reading 0
      (Davison & Hinkley 1997 §4.2; Phipson & Smyth 2010), so p >= 2/(resamples + 1).

    Empty inputs, or any NaN, give nan everywhere. With few cases every resampling method is
    optimistic: for pass/fail outcomes prefer ``mcnemar_midp``.
    """
    _check_confidence(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    differences = _differences(baseline, candidate)
    n = len(differences)
    if n == 0 or any(math.isnan(d) for d in differences):
        return math.nan, Interval(math.nan, math.nan), math.nan
    observed = math.fsum(differences) / n
    rng = random.Random(seed)
    means = [math.fsum(rng.choices(differences, k=n)) / n for _ in range(resamples)]
    alpha = 1 - confidence
    low = percentile(means, 100 * alpha / 2)
    high = percentile(means, 100 * (1 - alpha / 2))
    assert low is not None  # means is not empty
    assert high is not None
    if observed == 0:
        p_value = 1.0
    else:
        other_side = sum(m <= 0 for m in means) if observed > 0 else sum(m >= 0 for m in means)
        p_value = min(1.0, 2 * (other_side + 1) / (resamples + 1))
    return observed, Interval(low, high), p_value


def _differences(baseline: Sequence[float], candidate: Sequence[float]) -> list[float]:
    if len(baseline) != len(candidate):
        raise ValueError(
            f"cannot pair {len(baseline)} baseline with {len(candidate)} candidate cases"
        )
    return [c - b for b, c in zip(baseline, candidate, strict=True)]


# --- planning and multiplicity --------------------------------------------------------------


def minimum_detectable_effect(
    n: int,
    *,
    sd_diff: float | None = None,
    baseline_rate: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest true mean difference a paired comparison of n cases detects with ``power``.

    Miller 2024 eq. 10: δ = (z_{1-α/2} + z_{power})·sd/√n (two-sided α), sd being the standard
    deviation of the per-case differences. Print it next to "no significant regression", which
    otherwise reads as "no regression". The sd comes from (the first given wins):

    * ``sd_diff``: measured, or from Miller's ω² + σ_A²/K_A + σ_B²/K_B;
    * ``baseline_rate`` p for pass/fail cases, when the sd is unknown: the worst-ish case
      of uncorrelated runs (real runs correlate positively, which only shrinks the sd), with the
      candidate's rate q at the detectable effect moved δ from p towards 1/2, so that
      sd² = p(1-p) + q(1-q). That is √(2p(1-p)) for small δ, and it stays honest for an all-pass
      baseline, where √(2p(1-p)) = 0 would claim every regression is detectable. Solving
      δ² = (z²/n)·(2p(1-p) + δ·|2p-1| - δ²) gives the closed form used.

    ``n == 0`` gives inf.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"need 0 < alpha < 1 and 0 < power < 1, got {alpha} and {power}")
    if sd_diff is None and baseline_rate is None:
        raise ValueError("need sd_diff or baseline_rate")
    if n == 0:
        return math.inf
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    if sd_diff is not None:
        if not sd_diff >= 0:
            raise ValueError(f"sd_diff must not be negative, got {sd_diff}")
        return z * sd_diff / math.sqrt(n)
    assert baseline_rate is not None
    _check_probability(baseline_rate, "baseline_rate")
    k = z * z / n
    skew = abs(2 * baseline_rate - 1)
    spread = 2 * baseline_rate * (1 - baseline_rate)
    return (k * skew + math.sqrt((k * skew) ** 2 + 4 * (1 + k) * k * spread)) / (2 * (1 + k))


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in input order (Wright 1992, Biometrics 48:1005).

    The i-th smallest becomes max_{j ≤ i} min(1, (m - j + 1)·p_(j)): monotone in the raw p and
    capped at 1. Reject where the adjusted p ≤ α to control the family-wise error rate across
    the evals and metrics of one run.
    """
    for p in p_values:
        _check_probability(p, "p-value")
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def holm_bonferroni(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level α, in input order.

    Sorted ascending, p_(i) is compared with α/(m - i + 1) until the first that exceeds it;
    that one and every larger p are kept (Holm 1979, Scand J Statist 6:65). Uniformly more
    powerful than Bonferroni, with the same guarantee and no assumption on dependence.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    for p in p_values:
        _check_probability(p, "p-value")
    m = len(p_values)
    rejected = [False] * m
    for rank, index in enumerate(sorted(range(m), key=p_values.__getitem__)):
        if p_values[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected


def cohens_kappa(
    both_pass: int, human_only: int, judge_only: int, both_fail: int, confidence: float = 0.95
) -> tuple[float, Interval]:
    """Cohen's kappa of a judge with human labels on pass/fail, and its interval.

    The 2x2 table: rows the human verdict, columns the judge's: ``both_pass`` (human pass,
    judge pass), ``human_only`` (human pass, judge fail), ``judge_only`` (human fail, judge
    pass), ``both_fail``. The interval is kappa +/- z * SE with the large-sample standard
    error of Fleiss, Cohen & Everitt (1969), as statsmodels' ``cohens_kappa`` computes it.
    NaN (and a NaN interval) when kappa is undefined: no labels, or both raters gave a
    single verdict to everything (chance agreement is then 1).
    """
    _check_confidence(confidence)
    n = both_pass + human_only + judge_only + both_fail
    nan = float("nan")
    if n == 0:
        return nan, Interval(nan, nan)
    p = [[both_pass / n, human_only / n], [judge_only / n, both_fail / n]]
    rows = [p[0][0] + p[0][1], p[1][0] + p[1][1]]
    cols = [p[0][0] + p[1][0], p[0][1] + p[1][1]]
    observed = p[0][0] + p[1][1]
    expected = rows[0] * cols[0] + rows[1] * cols[1]
    if expected >= 1:
        return nan, Interval(nan, nan)
    kappa = (observed - expected) / (1 - expected)
    term_a = sum(p[i][i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in (0, 1))
    term_b = (1 - kappa) ** 2 * sum(
        p[i][j] * (cols[i] + rows[j]) ** 2 for i in (0, 1) for j in (0, 1) if i != j
    )
    term_c = (kappa - expected * (1 - kappa)) ** 2
    variance = max(0.0, (term_a + term_b - term_c) / (1 - expected) ** 2 / n)
    half = normal_quantile(1 - (1 - confidence) / 2) * math.sqrt(variance)
    return kappa, Interval(max(-1.0, kappa - half), min(1.0, kappa + half))


def corrected_rate(
    observed: float,
    n_observed: int,
    tpr: tuple[int, int],
    tnr: tuple[int, int],
    confidence: float = 0.95,
) -> tuple[float, Interval] | None:
    """The pass rate a judge's observed pass rate stands for, corrected for its measured
    error rates (Rogan & Gladen 1978): ``(observed + TNR - 1) / (TPR + TNR - 1)``, clipped
    to [0, 1], with a delta-method interval that adds the uncertainty of all three
    estimates: the run's ``n_observed`` graded samples, and the labels behind TPR
    (``(judge passes among human passes, human passes)``) and TNR (``(judge fails among
    human fails, human fails)``). TPR and TNR enter the variance as Agresti-Coull adjusted
    proportions ((x + 2) / (n + 4)), so a label sample that agrees perfectly still carries
    its small-sample uncertainty. None when the judge is no better than chance
    (TPR + TNR <= 1) or a side has no labels: nothing can be corrected.
    """
    _check_confidence(confidence)
    (tp, positives), (tn, negatives) = tpr, tnr
    if not positives or not negatives or not n_observed:
        return None
    sensitivity, specificity = tp / positives, tn / negatives
    youden = sensitivity + specificity - 1
    if youden <= 0:
        return None
    theta = (observed + specificity - 1) / youden
    adj_sens = (tp + 2) / (positives + 4)
    adj_spec = (tn + 2) / (negatives + 4)
    variance = (
        observed * (1 - observed) / n_observed
        + theta**2 * adj_sens * (1 - adj_sens) / positives
        + (1 - theta) ** 2 * adj_spec * (1 - adj_spec) / negatives
    ) / youden**2
    half = normal_quantile(1 - (1 - confidence) / 2) * math.sqrt(variance)
    clipped = min(1.0, max(0.0, theta))
    return clipped, Interval(max(0.0, theta - half), min(1.0, theta + half))
