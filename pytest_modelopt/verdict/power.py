"""How many paired cases an eval needs: the power of the regression gate on pass/fail cases.

``modelopt plan`` answers "how big must this dataset be before its gate can be trusted?" for
the rule the gate really applies (``compare.verdict_for``), not for a textbook z-test: a
pass/fail eval is *regressed* when McNemar's two-sided mid-p test on the cases whose outcome
flipped is significant (its Holm-adjusted p < α) **and** the observed drop is larger than the
tolerance. Its probability is computed exactly here, with no simulation and no scipy: given n
paired cases whose outcome flips from pass to fail with probability ``lost`` and from fail to
pass with probability ``won`` (independently from case to case), the number of flipped cases
D is Binomial(n, lost + won), and given D the number won C is Binomial(D, won / (lost + won)).
For each D the gate's verdict depends on C alone, and is *regressed* exactly for C at most a
critical count (mid-p grows with C), so the power is a one-dimensional sum of binomial tails.

The search starts from Connor's (1987, Biometrics 43:207) normal approximation for McNemar's
test and moves to the smallest n whose exact power reaches the target. The tests check the
result against a seeded simulation of the gate itself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .stats import _regularized_beta, normal_quantile  # I_x(a, b): the binomial tails

LIMIT = 100_000  # more paired cases than an eval is run on: past it, say so
_WINDOW_SDS = 8  # flipped-case counts further than this many sds from the mean weigh < 1e-14
_NEGLIGIBLE = 1e-14  # a term of the power sum that changes nothing a plan prints


class PlanError(ValueError):
    """Inputs that describe no possible pair of runs, or a drop the gate cannot detect."""


class Flips(NamedTuple):
    """The per-case probabilities of a flip between the baseline and the candidate."""

    lost: float  # the baseline passes, the candidate fails
    won: float  # the baseline fails, the candidate passes

    @property
    def discordance(self) -> float:
        return self.lost + self.won


def flips(rate: float, effect: float, discordance: float | None = None) -> Flips:
    """The flip probabilities of a drop of ``effect`` from the pass rate ``rate``.

    Without ``discordance`` the two runs' outcomes are assumed independent given their rates
    p and q = p - effect: lost = p(1 - q), won = (1 - p)q. Runs of similar prompts or models
    agree more than that (their outcomes correlate positively), so fewer cases flip and fewer
    cases are needed: the assumption errs on the safe side. With ``discordance`` d, the
    share of cases that flip (measured on a pair of earlier runs), lost = (d + effect)/2 and
    won = (d - effect)/2, which must fit the two rates.
    """
    if not 0 <= rate <= 1:
        raise PlanError(f"the pass rate must be within [0, 1], got {rate:g}")
    if not 0 < effect <= rate:
        raise PlanError(
            f"the drop must be positive and at most the pass rate {rate:g}, got {effect:g}"
        )
    after = rate - effect
    if discordance is None:
        return Flips(rate * (1 - after), (1 - rate) * after)
    lost, won = (discordance + effect) / 2, (discordance - effect) / 2
    if not effect <= discordance <= 1 or lost > min(rate, 1 - after) or won > min(after, 1 - rate):
        low, high = effect, min(1.0, rate + after, 2 - rate - after)
        raise PlanError(
            f"a discordance of {discordance:g} does not fit a drop of {effect:g} from {rate:g}: "
            f"it must be within [{low:g}, {high:g}] (the share of cases that flip, at least "
            "the drop)"
        )
    return Flips(lost, won)


def family_alpha(alpha: float, family: int) -> float:
    """The level one comparison of a family of ``family`` must reach, in the worst case.

    Holm's first step compares the smallest p-value with α/m; when the other comparisons
    of the family are unchanged, a real drop must clear that step, so α/m (Bonferroni's level)
    is what a dataset must be sized for. Holm never asks for less than α/m.
    """
    if not 0 < alpha < 1:
        raise PlanError(f"alpha must be within (0, 1), got {alpha:g}")
    if family < 1:
        raise PlanError(f"the family must have at least one comparison, got {family}")
    return alpha / family


def connor_cases(flip: Flips, *, alpha: float, power: float) -> int:
    """Connor's (1987) normal approximation for a two-sided McNemar test:
    n = (z_{1-α/2}·√d + z_{power}·√(d - δ²))² / δ², d the discordance, δ = lost - won."""
    delta = flip.lost - flip.won
    d = flip.discordance
    z = normal_quantile(1 - alpha / 2) * math.sqrt(d) + normal_quantile(power) * math.sqrt(
        max(d - delta * delta, 0.0)
    )
    return max(1, math.ceil((z / delta) ** 2))


class _Critical:
    """The largest count won, C, at which McNemar's mid-p is below α, for each number of
    flipped cases D (-1 when no count is). mid-p grows with min(C, D - C), so these C are
    exactly 0..critical(D); the values are cached across the n the search tries."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self._cache: dict[int, int] = {}
        self._z = normal_quantile(1 - alpha / 2)

    def midp(self, c: int, flipped: int) -> float:
        """Two-sided mid-p with min count c of ``flipped``: 2·P(X ≤ c) - P(X = c), X ~ Bin(D, ½),
        in floating point (``stats.mcnemar_midp`` is exact, and O(c) in big integers)."""
        below = _regularized_beta(0.5, flipped - c, c + 1)  # P(X <= c)
        log_pmf = (
            math.lgamma(flipped + 1)
            - math.lgamma(c + 1)
            - math.lgamma(flipped - c + 1)
            - flipped * math.log(2)
        )
        return min(1.0, 2 * below - math.exp(log_pmf))

    def __call__(self, flipped: int) -> int:
        known = self._cache.get(flipped)
        if known is not None:
            return known
        top = (flipped - 1) // 2  # C = D - C gives mid-p 1
        previous = self._cache.get(flipped - 1)
        c = (
            previous
            if previous is not None
            else math.floor(flipped / 2 - self._z * math.sqrt(flipped) / 2)
        )
        c = min(max(c, -1), top)
        while c >= 0 and self.midp(c, flipped) >= self.alpha:
            c -= 1
        while c < top and self.midp(c + 1, flipped) < self.alpha:
            c += 1
        self._cache[flipped] = c
        return c


def _binomial_log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + (k * math.log(p) if k else 0.0)
        + ((n - k) * math.log1p(-p) if n - k else 0.0)
    )


def regression_power(
    n: int, flip: Flips, *, alpha: float, tolerance: float, critical: _Critical | None = None
) -> float:
    """The probability that the gate calls a comparison of ``n`` paired pass/fail cases
    *regressed*: mid-p < ``alpha`` and an observed drop (C - B)/n < -``tolerance``."""
    if n < 1:
        return 0.0
    critical = critical or _Critical(alpha)
    d = flip.discordance
    if d <= 0:
        return 0.0
    won_share = flip.won / d
    if d >= 1:
        window = range(n, n + 1)
    else:
        centre, sd = n * d, math.sqrt(n * d * (1 - d))
        low = max(0, math.floor(centre - _WINDOW_SDS * sd - 10))
        window = range(low, min(n, math.ceil(centre + _WINDOW_SDS * sd + 10)) + 1)
    total = 0.0
    for flipped in window:
        weight = math.exp(_binomial_log_pmf(flipped, n, d)) if 0 < d < 1 else 1.0
        if weight < _NEGLIGIBLE:
            continue
        c = math.floor((flipped - tolerance * n) / 2) + 1
        while c >= 0 and not (2 * c - flipped) / n < -tolerance:  # the compared delta
            c -= 1
        if not (0 <= c < (flipped + 1) // 2 and critical.midp(c, flipped) < critical.alpha):
            c = min(c, critical(flipped))  # else mid-p < α up to c already: c stands
        if c < 0:
            continue
        if won_share == 0 or c >= flipped:
            tail = 1.0
        else:
            tail = _regularized_beta(1 - won_share, flipped - c, c + 1)  # P(C <= c)
        total += weight * tail
    return min(1.0, total)


class Plan(NamedTuple):
    cases: int  # the smallest n whose exact power reaches the target
    power: float  # the exact power at that n
    approximate: int  # Connor's normal approximation
    flips: Flips
    alpha: float  # per comparison (α / family)


def plan(flip: Flips, *, alpha: float, power: float, tolerance: float, limit: int = LIMIT) -> Plan:
    """The smallest number of paired cases at which the gate calls a drop *regressed* with
    probability ``power`` (exact), for comparisons tested at level ``alpha``.

    The power rises with n up to a small wobble from the discreteness of the test (the random
    number of flipped cases smooths it out); the search doubles from Connor's approximation
    until the target is reached, then bisects for the first n that reaches it.
    """
    if not 0 < power < 1:
        raise PlanError(f"the power must be within (0, 1), got {power:g}")
    if not 0 < alpha < 1:
        raise PlanError(f"alpha must be within (0, 1), got {alpha:g}")
    if not 0 <= tolerance < 1:
        raise PlanError(f"the tolerance must be within [0, 1), got {tolerance:g}")
    effect = flip.lost - flip.won
    if effect <= tolerance + 1e-12:  # lost - won carries rounding: 0.02 may be 0.0200...01
        raise PlanError(
            f"a drop of {100 * effect:.1f} points is never called a regression with "
            f"{power:.0%} power at a tolerance of {100 * tolerance:.1f} points: the gate calls a "
            "regression only when the observed drop is larger than the tolerance. Plan for a "
            "larger drop, or lower the tolerance (--tolerance, [tool.modelopt.gates])"
        )
    critical = _Critical(alpha)
    approximate = connor_cases(flip, alpha=alpha, power=power)

    def power_at(n: int) -> float:
        return regression_power(n, flip, alpha=alpha, tolerance=tolerance, critical=critical)

    low, high = 0, min(approximate, limit)
    while power_at(high) < power:
        if high >= limit:
            raise PlanError(
                f"more than {limit:,} paired cases would be needed: plan for a larger drop"
            )
        low, high = high, min(2 * high, limit)
    while high - low > 1:  # power_at(low) < power <= power_at(high), or low == 0
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle
    return Plan(high, power_at(high), approximate, flip, alpha)
