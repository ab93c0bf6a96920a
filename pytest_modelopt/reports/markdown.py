"""The comparison as Markdown: a PR comment and a GitHub step summary.

Model output is untrusted text: every piece of it is escaped (Markdown and HTML), its
``@mentions`` are neutralised (a zero-width joiner after the ``@``), lengths are capped, and
the whole comment stays under GitHub's 65,536-character limit.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from ..verdict.compare import family_text
from ..verdict.compare import headline as compare_headline
from .terminal import row_cost

if TYPE_CHECKING:
    from ..records.models import RunSummary
    from ..verdict.compare import CaseDiff, Comparison, EvalComparison
    from ..verdict.document import EvalReport
    from ..verdict.gates import GateResult

GITHUB_LIMIT = 65_536
BUDGET = 60_000  # room for a wrapper (the sticky comment's marker, a footer)
OUTPUT_CHARS = 300
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
ICONS = {"regressed": "❌", "improved": "🟢", "ok": "✅", "inconclusive": "⚠️"}


def escape(text: str | None, limit: int = OUTPUT_CHARS) -> str:
    """Untrusted text, safe inside a Markdown table cell or paragraph."""
    if text is None:
        return "—"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    text = text.replace("@", "@\u200d")
    return " ".join(text.split("\n")).replace("\r", " ") or "(empty)"


def code(text: str, limit: int = 120) -> str:
    """Text inside a code span, where Markdown escapes would show literally: no backticks,
    no line breaks (GitHub renders a code span's HTML characters as text)."""
    flat = " ".join(text.split())[:limit].replace("`", "'").replace("@", "@\u200d")
    return f"`{flat}`" if flat else "—"


def html_text(text: str, limit: int = 120) -> str:
    """Text inside raw HTML (a <summary>), where Markdown is not processed: HTML-escaped."""

    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return html.escape(flat).replace("@", "@\u200d")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _delta(row: EvalComparison) -> str:
    if row.delta is None:
        return "—"
    interval = ""
    if row.delta_low is not None and row.delta_high is not None:
        interval = f" [{row.delta_low:+.1%}, {row.delta_high:+.1%}]"
    return f"{row.delta:+.1%}{interval}"


def headline(comparison: Comparison, gates: list[GateResult]) -> str:
    tone, text = compare_headline(
        comparison, sum(not g.passed and not g.inconclusive for g in gates)
    )
    icon = {"bad": "❌", "warn": "⚠️", "good": "✅", "none": "✅"}[tone]
    return f"### {icon} {text}"


def render(comparison: Comparison, gates: list[GateResult] | None = None) -> str:
    gates = gates or []
    lines = [
        headline(comparison, gates),
        "",
        f"Baseline {code(comparison.baseline_run, 80)} → candidate "
        f"{code(comparison.candidate_run, 80)}; tolerance {comparison.tolerance:.1%}, "
        f"{family_text(comparison)} (*p*: the test's, *p adj*: Holm's).",
        "",
        "| eval | model | cases | pass rate | Δ pass rate [95% CI] | verdict | p | p adj | "
        "detectable | Δ cost/case | Δ p95 |",
        "|---|---|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in comparison.evals:
        model = escape(row.candidate.model, 80)
        if row.baseline.model != row.candidate.model:
            model = f"{escape(row.baseline.model, 80)} → {model}"
        cost = "—" if row.delta_cost_per_case is None else f"{row.delta_cost_per_case:+.0%}"
        p95 = "—" if row.delta_p95 is None else f"{row.delta_p95:+.2f}s"
        lines.append(
            f"| {escape(row.eval, 120)} | {model} | {row.paired} | "
            f"{_pct(row.baseline.pass_rate)} → {_pct(row.candidate.pass_rate)} | {_delta(row)} | "
            f"{ICONS[row.verdict]} {row.verdict} | "
            f"{'—' if row.p_value is None else f'{row.p_value:.3g}'} | "
            f"{'—' if row.p_adjusted is None else f'{row.p_adjusted:.3g}'} | "
            f"{'—' if row.mde is None else f'±{row.mde:.1%}'} | {cost} | {p95} |"
        )
    failed = [g for g in gates if not g.passed and not g.inconclusive]
    if failed:
        lines += ["", "**Failed gates**", ""]
        lines += [
            f"- {code(g.gate)} on {escape(g.eval, 120)} ({escape(g.model, 80)}): "
            f"{escape(g.message, 400)}"
            for g in failed
        ]
    notes = [f"- {escape(note, 400)}" for note in comparison.notes]
    for row in comparison.evals:
        if row.changed:
            notes.append(
                f"- {escape(row.eval, 120)}: the baseline used a different {', '.join(row.changed)}"
            )
        if row.added or row.removed:
            notes.append(
                f"- {escape(row.eval, 120)}: {len(row.added)} cases added, "
                f"{len(row.removed)} removed (not paired)"
            )
    if notes:
        lines += ["", "**Notes**", "", *notes]
    lines += [
        "",
        "*Detectable*: the smallest change this many paired cases can detect (80% power, "
        "α = 0.05); a smaller true change may go unnoticed.",
    ]
    body = "\n".join(lines)
    details = [_details(row) for row in comparison.evals if row.regressed_cases or row.fixed_cases]
    for block in details:
        if len(body) + len(block) + 2 > BUDGET:
            body += "\n\n*(more case details were left out to fit GitHub's comment limit)*"
            break
        body += "\n\n" + block
    return body


def _details(row: EvalComparison) -> str:
    out = [
        f"<details><summary>{html_text(row.eval)} ({html_text(row.candidate.model, 80)}): "
        f"{len(row.regressed_cases)} regressed, {len(row.fixed_cases)} fixed</summary>",
        "",
    ]
    for title, cases in (("Regressed", row.regressed_cases), ("Fixed", row.fixed_cases)):
        if not cases:
            continue
        out += [
            f"**{title}**",
            "",
            "| case | baseline output | candidate output |",
            "|---|---|---|",
        ]
        out += [_case_row(case) for case in cases]
        out.append("")
    out.append("</details>")
    return "\n".join(out)


def _case_row(case: CaseDiff) -> str:
    return (
        f"| {escape(case.case_id, 80)} | {escape(case.baseline_output)} | "
        f"{escape(case.candidate_output)} |"
    )


def render_report(report: EvalReport) -> str:
    """The comparison when there is a baseline, else the run's own table; then, when
    judges were calibrated or had to be, how they agree with the human labels."""
    if report.comparison is not None:
        body = render(report.comparison, report.gates)
    else:
        body = render_run(report.summary, report.gates)
    warning, agreement = calibration_section(report)
    return "\n\n".join(part for part in (warning, body, agreement) if part)


def calibration_section(report: EvalReport) -> tuple[str, str]:
    """A loud warning (GitHub's alert block), to put first, for each eval an uncalibrated
    judge could not decide; and each judge's agreement with the human labels."""
    if not report.calibration:
        return "", ""
    lines = []
    uncalibrated = report.uncalibrated
    if uncalibrated:
        effect = "fail" if report.fail_inconclusive else "do not fail"
        lines += [
            "> [!WARNING]",
            f"> **{len(uncalibrated)} eval verdict{'s' * (len(uncalibrated) != 1)} "
            f"inconclusive (judge not calibrated)**: they {effect} this check.",
        ]
        for cal in uncalibrated:
            lines.append(
                f"> - {escape(cal.eval, 120)}: judge {code(cal.grader, 80)}: "
                f"{escape(cal.why, 400)}; {cal.cells()['needed']}"
            )
    warning = "\n".join(lines)
    lines = [
        "**Judge calibration** (agreement with human labels, 95% intervals)",
        "",
        "| eval | judge | labels | accuracy | κ | TPR | TNR | calibrated |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for cal in report.calibration:
        cells = cal.cells()
        icon = {True: "✅ ", False: "❔ ", None: ""}[cal.calibrated]
        lines.append(
            f"| {escape(cal.eval, 120)} | {code(cal.grader, 80)} | {cal.labels} | "
            f"{cells['accuracy']} | {cells['kappa']} | {cells['tpr']} | {cells['tnr']} | "
            f"{icon}{cells['calibrated']} |"
        )
    corrected = [(cal, rate) for cal in report.calibration for rate in cal.corrected]
    if corrected:
        lines += ["", "Judge-corrected pass rates (Rogan–Gladen, see docs/comparing.md):", ""]
        lines += [
            f"- {escape(cal.eval, 120)} ({escape(rate.model, 80)}), judge {code(cal.grader, 80)}:"
            f" {rate.rate:.0%} [{rate.low:.0%}, {rate.high:.0%}]; the judge passed "
            f"{rate.observed:.0%} of {rate.graded}"
            for cal, rate in corrected
        ]
    return warning, "\n".join(lines)


def render_run(summary: RunSummary, gates: list[GateResult] | None = None) -> str:
    gates = gates or []
    failed = [g for g in gates if not g.passed and not g.inconclusive]
    below = [row for row in summary.evals if row.verdict == "fail"]
    undecided = [row for row in summary.evals if row.verdict == "inconclusive"]
    if failed or below:
        head = (
            f"### ❌ {len(below) + len(failed)} check{'s' * (len(below) + len(failed) != 1)} failed"
        )
    elif undecided:
        head = f"### ❔ {len(undecided)} inconclusive: a judge is not calibrated"
    else:
        head = "### ✅ every eval passed its checks"
    lines = [
        head,
        "",
        f"Run {code(summary.run.run_id, 80)} (no baseline to compare with).",
        "",
        "| eval | model | cases | pass rate | score | errors | cost | p95 | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in summary.evals:
        cost = row_cost(row)
        p95 = "—" if row.latency_p95 is None else f"{row.latency_p95:.2f}s"
        score = "—" if row.mean_score is None else f"{row.mean_score:.2f}"
        verdict = {
            "pass": "✅ pass",
            "fail": "❌ fail",
            "pending": "⏳ pending",
            "error": "⚠️ error",
            "none": "—",
            "inconclusive": "❔ inconclusive",
        }[row.verdict]
        lines.append(
            f"| {escape(row.eval, 120)} | {escape(row.model, 80)} | {row.cases} | "
            f"{_pct(row.pass_rate)} | {score} | {row.errors} | {cost} | {p95} | {verdict} |"
        )
    if failed:
        lines += ["", "**Failed gates**", ""]
        lines += [
            f"- {code(g.gate)} on {escape(g.eval, 120)}: {escape(g.message, 400)}" for g in failed
        ]
    if summary.run.notes:
        lines += ["", "**Notes**", "", *(f"- {escape(n, 400)}" for n in summary.run.notes)]
    return "\n".join(lines)
