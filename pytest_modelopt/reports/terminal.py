"""The end-of-session table: one row per eval x model, as plain lines of text.

Every line the summary returns has been through ``untrusted.for_terminal``: names, error
messages from servers and reasons written by judges are untrusted text, and an escape
sequence in them must not drive the terminal or the CI log that shows it.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..costs import money
from ..records.models import EvalSummary, RunSummary
from ..untrusted import for_terminal, one_line
from ..verdict.compare import family_text

if TYPE_CHECKING:
    from ..verdict.calibration import JudgeCalibration
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


def row_cost(row: EvalSummary) -> str:
    """The row's cost: ``?`` unknown, ``+?`` partly known, ``-`` when no call was made (a
    pending eval; a record of version 2 with tokens and no cost is an unknown price)."""
    spent = bool(row.unpriced_calls or row.prompt_tokens or row.completion_tokens)
    return money(row.cost, row.unpriced_calls, calls=spent)


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
    return _short_verdict(row)


def _short_verdict(row: EvalSummary) -> str:
    return {
        "pass": "PASS",
        "fail": "FAIL",
        "pending": "PENDING",
        "error": "ERROR",
        "none": "-",
        "inconclusive": "INCONCLUSIVE",
    }[row.verdict]


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
    ("cost", lambda r: row_cost(r)),
    ("p50", lambda r: _secs(r.latency_p50)),
    ("p95", lambda r: _secs(r.latency_p95)),
    ("verdict", _verdict),
]


JUDGE_COLUMN: Column = (
    "judge cost",
    lambda r: money(r.judge_cost, r.unpriced_judge_calls) if r.judge_calls else "-",
)
#: what a narrow terminal loses first (docs/reference.md, "The summary table"), in order:
#: whole columns (the hooks' own at EXTRA), then the verdict's threshold (``PASS``) and the
#: pass rate's interval (``pass rate``), then cost and errors; then the names are shortened.
#: Eval, model, pass rate and verdict always stay.
FIT_STEPS = (
    "p50",
    "tokens",
    "judge cost",
    "score",
    "EXTRA",
    "p95",
    "cases",
    "short:verdict",
    "short:pass rate [95% CI]",
    "cost",
    "errors",
)
#: the shorter form of a column (a ``short:`` step)
SHORT: dict[str, Column] = {
    "verdict": ("verdict", _short_verdict),
    "pass rate [95% CI]": ("pass rate", lambda r: _rate(r.pass_rate)),
}
#: the comparison table's order (``modelopt compare``, a run with a baseline)
COMPARISON_STEPS = ("d p95", "p", "p adj", "detectable", "d cost", "cases", "short:delta [95% CI]")
MIN_NAME = 8  # a name is not shortened below this many columns
NUMERIC = frozenset(
    {"cases", "pass rate [95% CI]", "pass rate", "score", "errors", "tokens", "cost"}
    | {"judge cost", "p50", "p95"}
)


def table_lines(
    rows: Sequence[EvalSummary], extra: Sequence[Column] = (), width: int | None = None
) -> list[str]:
    """The summary table, one row per eval and model, within ``width`` columns when given:
    whole columns are dropped and the rest shortened in a fixed order (FIT_STEPS), so that
    no row wraps and eval, model, pass rate and verdict always stay."""
    judges = [JUDGE_COLUMN] if any(r.judge_calls for r in rows) else []
    columns = [*COLUMNS[:-3], *judges, *COLUMNS[-3:-1], *extra, COLUMNS[-1]]
    extra_names = sorted(header for header, _ in extra)
    steps = [name for step in FIT_STEPS for name in (extra_names if step == "EXTRA" else [step])]
    return fit_table(
        [Cells(h, [one_line(fn(row)) for row in rows], h in NUMERIC) for h, fn in columns],
        width,
        steps=steps,
        short={
            name: Cells(header, [one_line(fn(row)) for row in rows], name in NUMERIC)
            for name, (header, fn) in SHORT.items()
        },
    )


@dataclass
class Cells:
    """One column of a table being fitted: its header and its cells, as shown."""

    header: str
    cells: list[str]
    numeric: bool = False


def display_width(text: str) -> int:
    """Columns a terminal gives the text: wide (East Asian) characters take two, combining
    marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def shorten(text: str, width: int) -> str:
    """The text cut to ``width`` columns, an ellipsis marking the cut."""
    if display_width(text) <= width:
        return text
    out = ""
    for char in text:
        if display_width(out + char) > width - 1:
            break
        out += char
    return out + "…"


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def _render(cols: list[Cells]) -> list[str]:
    widths = [max(display_width(t) for t in [c.header, *c.cells]) for c in cols]
    out = ["  ".join(_pad(c.header, w, False) for c, w in zip(cols, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for index in range(len(cols[0].cells) if cols else 0):
        out.append(
            "  ".join(
                _pad(c.cells[index], w, c.numeric) for c, w in zip(cols, widths, strict=True)
            ).rstrip()
        )
    return out


def _too_wide(lines: list[str], width: int | None) -> bool:
    return width is not None and max(display_width(line) for line in lines) > width


def fit_table(
    cols: list[Cells],
    width: int | None,
    *,
    steps: Sequence[str] = (),
    short: Mapping[str, Cells] | None = None,
    names: Sequence[str] = ("eval", "model"),
) -> list[str]:
    """The table's lines within ``width``: take the ``steps`` one by one until it fits (a
    column's name drops it; ``short:NAME`` swaps it for its shorter form in ``short``),
    then shorten the ``names`` columns with an ellipsis (the wider first). A table that
    cannot fit even so (a terminal narrower than its essential columns) is shown as
    narrow as it gets."""
    lines = _render(cols)
    for step in steps:
        if not _too_wide(lines, width):
            return lines
        if step.startswith("short:"):
            name = step.removeprefix("short:")
            cols = [(short or {}).get(name, c) if c.header == name else c for c in cols]
        else:
            cols = [c for c in cols if c.header != step]
        lines = _render(cols)
    if width is None or not _too_wide(lines, width):
        return lines
    named = [c for c in cols if c.header in names and c.cells]
    while _too_wide(lines, width):
        widths = {c.header: max(display_width(t) for t in c.cells) for c in named}
        longer = [c for c in named if widths[c.header] > max(len(c.header), MIN_NAME)]
        if not longer:
            break
        widest = max(longer, key=lambda c: widths[c.header])
        widest.cells = [shorten(t, widths[widest.header] - 1) for t in widest.cells]
        lines = _render(cols)
    return lines


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


def comparison_lines(comparison: Comparison, width: int | None = None) -> list[str]:
    """Per eval x model: pass rates, the paired change with its interval, the verdict;
    within ``width`` columns when given (COMPARISON_STEPS). ``p`` is the test's own p-value,
    ``p adj`` the Holm-adjusted one the verdict reads; the line after the table names the
    family they were adjusted over."""
    header = (
        "eval",
        "model",
        "cases",
        "pass rate",
        "delta [95% CI]",
        "verdict",
        "p",
        "p adj",
        "detectable",
        "d cost",
        "d p95",
    )
    cells: list[tuple[str, ...]] = []
    deltas = []
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
        deltas.append("-" if row.delta is None else f"{row.delta:+.1%}")
        cells.append(
            (
                row.eval,
                model,
                str(row.paired),
                f"{_rate(row.baseline.pass_rate)} -> {_rate(row.candidate.pass_rate)}",
                delta,
                row.verdict.upper(),
                "-" if row.p_value is None else f"{row.p_value:.3g}",
                "-" if row.p_adjusted is None else f"{row.p_adjusted:.3g}",
                "-" if row.mde is None else f"{row.mde:.1%}",
                "-" if row.delta_cost_per_case is None else f"{row.delta_cost_per_case:+.0%}",
                "-" if row.delta_p95 is None else f"{row.delta_p95:+.2f}s",
            )
        )
    out = fit_table(
        [Cells(name, [one_line(line[i]) for line in cells]) for i, name in enumerate(header)],
        width,
        steps=COMPARISON_STEPS,
        short={"delta [95% CI]": Cells("delta", deltas)},
    )
    if comparison.evals:
        out.append(f"p adj: {family_text(comparison)}")
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
        f"{'INCONCLUSIVE' if g.inconclusive else 'FAILED'} gate {g.gate} on {g.eval} "
        f"[{g.model}]: {g.message}" + (" (its judge is not calibrated)" if g.inconclusive else "")
        for g in gates
        if not g.passed
    ]


def calibration_lines(calibration: Sequence[JudgeCalibration]) -> list[str]:
    """Each LLM judge against the human labels, and the judge-corrected pass rates; an eval
    its uncalibrated judge cannot decide says so, with how many more labels would do."""
    out = []
    for cal in calibration:
        out.append(f"{cal.eval}: {cal.summary}")
        for rate in cal.corrected:
            out.append(
                f"  judge-corrected pass rate [{rate.model}]: {rate.rate:.0%} "
                f"[{rate.low:.0%}, {rate.high:.0%}] (the judge passed {rate.observed:.0%})"
            )
    return out


def inconclusive_lines(report: EvalReport) -> list[str]:
    """The loud part: which evals no judge could decide, and what would calibrate it."""
    out = []
    effect = "fails the run" if report.fail_inconclusive else "does not fail the run"
    for cal in report.uncalibrated:
        out.append(
            f"INCONCLUSIVE eval {cal.eval} (judge not calibrated): judge {cal.grader!r}: "
            f"{cal.why}; {cal.cells()['needed']} ({effect}; label cases with "
            "`modelopt review`)"
        )
    return out


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
    width: int | None = None  # the terminal's: tables drop and shorten columns to fit


def summary_lines(parts: SummaryParts) -> list[Line]:
    """The summary the pytest session ends with, in order; the hook only prints it.

    A run whose verdict could not be decided ends with what broke and what to do, in red:
    it fails whatever the table shows.
    """
    lines: list[Line] = []
    summary, report = parts.summary, parts.report
    if report is not None and summary is not None:
        summary = report.summary  # with the verdicts the policy decided (inconclusive)
    if summary is not None and summary.evals:
        if parts.progress:
            lines.append(Line(f"modelopt: {parts.progress}"))
        lines.append(Line("modelopt: evals", sep="="))
        lines += [
            Line(text) for text in table_lines(summary.evals, parts.extra_columns, parts.width)
        ]
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
            lines += [Line(text) for text in comparison_lines(report.comparison, parts.width)]
        if report is not None and report.calibration:
            lines.append(Line("judge calibration", sep="-"))
            lines += [Line(text) for text in calibration_lines(report.calibration)]
        failures = failure_lines(summary, f"modelopt show {parts.run_dir}")
        failures += gate_lines(report.gates) if report is not None else []
        lines.append(Line(""))
        lines += [Line(text, red=True, bold=True) for text in failures]
        if report is not None:
            lines += [Line(t, yellow=True, bold=True) for t in inconclusive_lines(report)]
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
