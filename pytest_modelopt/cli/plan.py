"""``modelopt plan``: how many paired cases an eval needs before its gate can be trusted.

A gate that cannot see a drop says *inconclusive* at best; sizing the dataset first is
cheaper than learning it from a string of inconclusive pull requests. The numbers come from
:mod:`pytest_modelopt.verdict.power`, the exact power of the gate's own rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import find_project
from ..run import settings_for
from ..verdict.compare import BINARY_TEST
from ..verdict.power import PlanError, family_alpha, flips, plan

if TYPE_CHECKING:
    from argparse import _SubParsersAction


def _share(text: str) -> float:
    """A share as a number (0.05) or a percentage (5%)."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0.05 or 5%)") from None


def add_command(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser(
        "plan",
        help="how many paired pass/fail cases an eval needs to detect a drop with the gate",
    )
    command.add_argument(
        "--effect", type=_share, required=True, help="the drop to detect: 0.05 or 5%%"
    )
    command.add_argument(
        "--rate", type=_share, required=True, help="the baseline's pass rate: 0.9 or 90%%"
    )
    command.add_argument(
        "--power", type=_share, default=0.8, help="the chance to call it (default 0.8)"
    )
    command.add_argument(
        "--alpha",
        type=_share,
        help="family-wise significance level (default: [tool.modelopt.gates] alpha, 0.05)",
    )
    command.add_argument(
        "--tolerance",
        type=_share,
        help="the drop the gate tolerates (default: [tool.modelopt.gates] tolerance, 0.02)",
    )
    command.add_argument(
        "--family",
        type=int,
        default=1,
        metavar="N",
        help="comparisons Holm adjusts together (evals x models): plans for alpha/N, the "
        "worst case (default 1)",
    )
    command.add_argument(
        "--discordance",
        type=_share,
        help="the share of cases whose pass/fail flips between the runs, if measured "
        "(default: outcomes independent given the rates)",
    )
    command.set_defaults(fn=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    gates = settings_for(find_project(Path.cwd())).gates
    alpha = gates.alpha if args.alpha is None else args.alpha
    tolerance = gates.tolerance if args.tolerance is None else args.tolerance
    try:
        per_comparison = family_alpha(alpha, args.family)
        flip = flips(args.rate, args.effect, args.discordance)
        result = plan(flip, alpha=per_comparison, power=args.power, tolerance=tolerance)
    except PlanError as exc:
        print(f"modelopt plan: {exc}", file=sys.stderr)
        return 2
    after = args.rate - args.effect
    level = (
        f"alpha {alpha:g} (one comparison)"
        if args.family == 1
        else f"alpha {alpha:g}/{args.family} = {per_comparison:.3g} per comparison (the worst "
        f"case of Holm over {args.family} comparisons)"
    )
    assumed = (
        "outcomes independent given the rates, so"
        if args.discordance is None
        else "as measured (--discordance),"
    )
    for line in (
        f"modelopt plan: {result.cases:,} paired cases",
        f"  drop:       {args.rate:.1%} -> {after:.1%} ({100 * args.effect:.1f} points), called a "
        f"regression with {args.power:.0%} power (exact: {result.power:.1%} at "
        f"{result.cases:,} cases)",
        f"  test:       {BINARY_TEST}, two-sided, {level}",
        f"  regression: significant and an observed drop beyond the tolerance {tolerance:.1%}",
        f"  assumed:    {assumed} {flip.discordance:.1%} of cases flip: "
        f"{flip.lost:.1%} pass -> fail, {flip.won:.1%} fail -> pass",
        f"  approx.:    {result.approximate:,} cases by Connor's normal approximation",
    ):
        print(line)
    return 0
