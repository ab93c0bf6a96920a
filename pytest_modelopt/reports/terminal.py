"""The end-of-session table: one row per eval x model, as plain lines of text.

Every line the summary returns has been through ``untrusted.for_terminal``: names, error
messages from servers and reasons written by judges are untrusted text, and an escape
sequence in them must not drive the terminal or the CI log that shows it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..records.models import EvalSummary, RunSummary
from ..untrusted import for_terminal, one_line

if TYPE_CHECKING:
    from ..verdict.compare import Comparison
    from ..verdict.document import EvalReport
    from ..verdict.gates import GateResult

Column = tuple[str, Callable[[EvalSummary], str]]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _rate_ci(row: EvalSummary) -> str:
    if row.pass_rate is None or row.pass_rate_low is None or row.pass_rate_high is None:
        return _rate(row.pass_rate)
    return f"{row.pass_rate:.1%} [{row.pass_rate_low:.0%}, {row.pass_rate_high:.0%}]"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cost(value: float | None) -> str:
    if value is None:
        return "?"
    if 0 < value < 0.0001:
        return "<$0.0001"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _count(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _verdict(row: EvalSummary) -> str:
    bound = "lower bound " if row.strict else ""
    if row.verdict == "pass":
        return f"PASS ({bound}>= {row.threshold:g})"
    if row.verdict == "fail":
        return f"FAIL ({bound}< {row.threshold:g})"
    return {"pending": "PENDING", "error": "ERROR", "none": "-"}[row.verdict]


COLUMNS: list[Column] = [
    ("eval", lambda r: r.eval),
    ("model", lambda r: r.model),
    (
        "cases",
        lambda r: (
            str(r.cases) if r.samples == r.cases else f"{r.cases}x{r.samples // max(r.cases, 1)}"
        ),
    ),
    ("pass rate [95% CI]", lambda r: _rate_ci(r)),
    ("score", lambda r: _num(r.mean_score)),
    ("errors", lambda r: str(r.errors)),
    ("tokens", lambda r: f"{r.prompt_tokens + r.completion_tokens:,}"),
    ("cost", lambda r: _cost(r.cost)),
    ("p50", lambda r: _secs(r.latency_p50)),
    ("p95", lambda r: _secs(r.latency_p95)),
    ("verdict", _verdict),
]


JUDGE_COLUMN: Column = ("judge cost", lambda r: _cost(r.judge_cost) if r.judge_calls else "-")


def table_lines(rows: Sequence[EvalSummary], extra: Sequence[Column] = ()) -> list[str]:
    judges = [JUDGE_COLUMN] if any(r.judge_calls for r in rows) else []
    columns = [*COLUMNS[:-3], *judges, *COLUMNS[-3:-1], *extra, COLUMNS[-1]]
    cells = [[header for header, _ in columns]]
    cells += [[fn(row) for _, fn in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    numeric = {
        "cases",
        "pass rate [95% CI]",
        "score",
        "errors",
        "tokens",
        "cost",
        "judge cost",
        "p50",
        "p95",
    }
    out = []
    for index, line in enumerate(cells):
        parts = [
            cell.rjust(width) if columns[i][0] in numeric and index else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        out.append("  ".join(parts).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def failure_lines(summary: RunSummary, show_command: str) -> list[str]:
    """Which eval missed its threshold, by how much, and the command that shows the cases."""
    out = []
    for row in summary.evals:
        if row.verdict != "fail" or row.pass_rate is None or row.threshold is None:
            continue
        measured = (
            row.pass_rate_low if row.strict and row.pass_rate_low is not None else (row.pass_rate)
        )
        what = "the lower bound of the pass rate" if row.strict else "pass rate"
        out.append(
            f"FAILED eval {row.eval} on {row.model}: {what} {measured:.1%} is "
            f"{row.threshold - measured:.1%} below its threshold {row.threshold:.0%} "
            f"({_count(row.passed)} of {row.graded} cases passed"
            + (f", {row.errors} errors" if row.errors else "")
            + ")"
        )
        out.append(f"  see the failing cases: {show_command} --eval '{row.eval}' --failed")
    return out


def error_lines(summary: RunSummary, limit: int = 3) -> list[str]:
    out = []
    items = list(summary.error_messages.items())
    for message, count in items[:limit]:
        out.append(f"{count} x {one_line(message, 500)}")
    if len(items) > limit:
        out.append(f"... and {len(items) - limit} other error messages")
    return out


def grader_lines(rows: Sequence[EvalSummary]) -> list[str]:
    """Per-grader pass rates, for evals graded by more than one grader."""
    out = []
    for row in rows:
        if len(row.graders) < 2:
            continue
        parts = [f"{g.name} {g.pass_rate:.0%} ({g.passed}/{g.graded})" for g in row.graders]
        out.append(f"{row.eval} [{row.model}]: " + ", ".join(parts))
    return out


def comparison_lines(comparison: Comparison) -> list[str]:
    """Per eval x model: pass rates, the paired change with its interval, the verdict."""
    header = (
        "eval",
        "model",
        "cases",
        "pass rate",
        "delta [95% CI]",
        "verdict",
        "p",
        "detectable",
        "d cost",
        "d p95",
    )
    cells = [header]
    for row in comparison.evals:
        model = (
            row.candidate.model
            if row.baseline.model == row.candidate.model
            else (f"{row.baseline.model} -> {row.candidate.model}")
        )
        delta = (
            "-"
            if row.delta is None
            else (
                f"{row.delta:+.1%} [{row.delta_low:+.1%}, {row.delta_high:+.1%}]"
                if row.delta_low is not None and row.delta_high is not None
                else f"{row.delta:+.1%}"
            )
        )
        cells.append(
            (
                row.eval,
                model,
                str(row.paired),
                f"{_rate(row.baseline.pass_rate)} -> {_rate(row.candidate.pass_rate)}",
                delta,
                row.verdict.upper(),
                "-" if row.p_adjusted is None else f"{row.p_adjusted:.3g}",
                "-" if row.mde is None else f"{row.mde:.1%}",
                "-" if row.delta_cost_per_case is None else f"{row.delta_cost_per_case:+.0%}",
                "-" if row.delta_p95 is None else f"{row.delta_p95:+.2f}s",
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    for row in comparison.evals:
        if row.verdict != "ok" and row.why:
            out.append(f"{row.eval} [{row.candidate.model}]: {row.verdict}: {row.why}")
        if row.changed:
            out.append(f"{row.eval}: the baseline used a different {', '.join(row.changed)}")
        if row.regressed_cases:
            shown = ", ".join(c.case_id for c in row.regressed_cases[:10])
            more = len(row.regressed_cases) - 10
            out.append(f"  regressed cases: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    return out


def gate_lines(gates: Sequence[GateResult]) -> list[str]:
    return [
        f"FAILED gate {g.gate} on {g.eval} [{g.model}]: {g.message}" for g in gates if not g.passed
    ]


@dataclass(frozen=True)
class Line:
    """One line of the end-of-session summary; ``sep``: a separator with this character,
    ``text`` as its title."""

    text: str
    sep: str | None = None
    red: bool = False
    bold: bool = False
    yellow: bool = False


@dataclass(frozen=True)
class SummaryParts:
    """Everything the end-of-session summary shows, gathered by the caller."""

    summary: RunSummary | None
    report: EvalReport | None
    problems: Sequence[str] = ()
    progress: str | None = None
    extra_columns: Sequence[Column] = ()
    sections: Sequence[tuple[str, str]] = ()
    notes: Sequence[str] = ()  # the run's own notes (holdouts) and the report writer's
    store_warnings: Sequence[str] = ()
    distill_to: str | None = None
    distill_lines: Sequence[str] = ()
    run_dir: str = ""
    baseline_ref: str | None = None


def summary_lines(parts: SummaryParts) -> list[Line]:
    """The summary the pytest session ends with, in order; the hook only prints it.

    A run whose verdict could not be decided ends with what broke and what to do, in red:
    it fails whatever the table shows.
    """
    lines: list[Line] = []
    summary, report = parts.summary, parts.report
    if summary is not None and summary.evals:
        if parts.progress:
            lines.append(Line(f"modelopt: {parts.progress}"))
        lines.append(Line("modelopt: evals", sep="="))
        lines += [Line(text) for text in table_lines(summary.evals, parts.extra_columns)]
        by_grader = grader_lines(summary.evals)
        if by_grader:
            lines += [Line(""), Line("graders:"), *(Line(f"  {t}") for t in by_grader)]
        errors = error_lines(summary)
        if errors:
            lines += [Line(""), Line("errors (not counted in pass rates):")]
            lines += [Line(f"  {t}") for t in errors]
        pending = {row.eval: row.note for row in summary.evals if row.verdict == "pending"}
        for name, note in sorted(pending.items()):
            lines.append(Line(f"PENDING eval {name}: {note or 'skipped'}"))
        for title, text in parts.sections:
            lines += [Line(title, sep="-"), Line(text)]
        lines += [Line(f"modelopt: {note}") for note in parts.notes]
        lines += [Line(f"modelopt: store: {w}", yellow=True) for w in parts.store_warnings[:5]]
        if parts.distill_lines:
            lines.append(Line(f"distill into {parts.distill_to}", sep="-"))
            lines += [Line(text) for text in parts.distill_lines]
        if report is not None and report.comparison is not None:
            lines.append(Line(f"compared with {report.comparison.baseline_run}", sep="-"))
            lines += [Line(text) for text in comparison_lines(report.comparison)]
        failures = failure_lines(summary, f"modelopt show {parts.run_dir}")
        failures += gate_lines(report.gates) if report is not None else []
        lines.append(Line(""))
        lines += [Line(text, red=True, bold=True) for text in failures]
        if report is not None and report.comparison is not None and report.comparison.regressed:
            lines.append(
                Line(
                    f"see the regressed cases: modelopt compare {parts.baseline_ref} "
                    f"{parts.run_dir} --md compare.md",
                    red=True,
                )
            )
    if parts.problems:
        if summary is None or not summary.evals:
            lines.append(Line("modelopt", sep="="))
        for problem in parts.problems:
            lines.append(Line(f"modelopt: {problem}", red=True, bold=True))
        lines.append(
            Line(
                "modelopt: so this run fails (exit status 3), whatever the table says: fix the "
                "problem above and run again",
                red=True,
                bold=True,
            )
        )
    if summary is not None and summary.evals:
        lines.append(Line(f"run saved to {parts.run_dir} (modelopt show {parts.run_dir})"))
    return [dataclasses.replace(line, text=for_terminal(line.text)) for line in lines]
