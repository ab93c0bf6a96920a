"""One run as one self-contained HTML page: its summary (and, with a baseline, the comparison:
summary, charts and the changed cases), then the run viewer, every case of the run.

The page loads nothing from anywhere: its CSS and its small script are inline, its charts
are inline SVG, and a Content-Security-Policy meta tag forbids every other source. Model
output is untrusted text: the template autoescapes every value (nothing is marked safe),
the charts are handed to the template as plain shapes and strings so their text is escaped
too, and the script only reads ``textContent`` and toggles ``hidden`` / classes. The run
viewer's cases are data (``viewer.py``): JSON in a ``<script type="application/json">``
element, which the page's script parses and draws with ``textContent`` only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..verdict.compare import CASES_SHOWN, family_text
from ..verdict.compare import headline as compare_headline
from .terminal import COLUMNS
from .viewer import script_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..records.models import RunSummary
    from ..verdict.calibration import JudgeCalibration
    from ..verdict.compare import CaseDiff, Comparison, EvalComparison
    from ..verdict.gates import GateResult

TEMPLATES = Path(__file__).parent / "templates"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
OUTPUT_CHARS = 4_000  # per output cell; the rest is cut with a note
LABEL_CHARS = 28  # eval / model names inside a chart
# Symbols that common text fonts have (no colour-emoji font needed).
ICONS = {"regressed": "✗", "improved": "▲", "ok": "✓", "inconclusive": "⚠"}

_TAGS = frozenset({"rect", "line", "circle", "text"})
_ATTR = re.compile(r"^[a-z][a-z0-9-]*$")


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --- view models: plain strings and numbers, escaped by the template ------------------------


@dataclass(frozen=True)
class SvgElement:
    """One SVG shape; tag and attribute names come from this module, never from data."""

    tag: str
    attrs: tuple[tuple[str, str], ...]
    text: str = ""
    title: str = ""


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    label: str
    elements: list[SvgElement]
    arrows: bool = False


@dataclass(frozen=True)
class SummaryRow:
    key: str
    eval: str
    model: str
    paired: int
    cases_note: str
    errors: str
    baseline_rate: str
    baseline_ci: str
    candidate_rate: str
    candidate_ci: str
    delta: str
    delta_ci: str
    verdict: str
    icon: str
    why: str
    p: str
    p_note: str
    mde: str
    cost: str
    p95: str


@dataclass(frozen=True)
class EvalChart:
    key: str
    verdict: str
    icon: str
    delta: str
    chart: Chart


@dataclass(frozen=True)
class CaseRow:
    kind: str
    eval: str
    case_id: str
    baseline_score: str
    candidate_score: str
    baseline_output: str | None
    candidate_output: str | None
    baseline_cut: int
    candidate_cut: int
    reason: str


@dataclass
class Scatter:
    chart: Chart | None
    log_scale: bool = False
    missing: list[str] = field(default_factory=list)


# --- formatting ------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"[{low:.1%}, {high:.1%}]"


def _signed_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"[{low:+.1%}, {high:+.1%}]"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def money(value: float) -> str:
    """A cost per case in USD, with enough digits to tell small prices apart."""
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    digits = max(2, 2 - math.floor(math.log10(value)))  # three significant digits
    text = f"{value:.{digits}f}"
    while text.endswith("0") and len(text.partition(".")[2]) > 2:
        text = text[:-1]
    return f"${text}"


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key(row: EvalComparison) -> str:
    """The eval's name, plus the model when the rows compare models within one run."""
    if row.baseline.model != row.candidate.model:
        return f"{row.eval} · {row.candidate.model}"
    return row.eval


def _test_name(name: str) -> str:
    """A short label for a chart: the last part of a pytest node id."""
    return name.rsplit("::", 1)[-1] or name


def _cap(text: str | None) -> tuple[str | None, int]:
    if text is None or len(text) <= OUTPUT_CHARS:
        return text, 0
    return text[:OUTPUT_CHARS], len(text) - OUTPUT_CHARS


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _el(tag: str, text: str = "", title: str = "", **attrs: float | str) -> SvgElement:
    if tag not in _TAGS:
        raise ValueError(f"unexpected SVG tag {tag!r}")
    pairs = []
    for name, value in attrs.items():
        attr = name.rstrip("_").replace("_", "-")
        if not _ATTR.match(attr):
            raise ValueError(f"unexpected SVG attribute {attr!r}")
        pairs.append((attr, value if isinstance(value, str) else _n(value)))
    return SvgElement(tag, tuple(pairs), text, title)


# --- headline, summary, cases ----------------------------------------------------------------


def headline(comparison: Comparison, gates: list[GateResult]) -> tuple[str, str]:
    """(tone, text): tone is ``bad``, ``warn``, ``good`` or ``none``."""
    tone, text = compare_headline(comparison, sum(not g.passed for g in gates))
    symbol = {"bad": "✗ ", "warn": "⚠ ", "good": "✓ ", "none": ""}[tone]
    if tone == "good" and "improved" in text:
        symbol = "▲ "
    return tone, symbol + text


def _summary_row(row: EvalComparison) -> SummaryRow:
    model = row.candidate.model
    if row.baseline.model != row.candidate.model:
        model = f"{row.baseline.model} → {row.candidate.model}"
    notes = [f"baseline {row.baseline.cases} cases, candidate {row.candidate.cases}"]
    if row.added or row.removed:
        notes.append(f"{len(row.added)} added, {len(row.removed)} removed (not paired)")
    errors = row.baseline.errors or row.candidate.errors
    return SummaryRow(
        key=_key(row),
        eval=row.eval,
        model=model,
        paired=row.paired,
        cases_note="; ".join(notes),
        errors=f"errors {row.baseline.errors} → {row.candidate.errors}" if errors else "",
        baseline_rate=_pct(row.baseline.pass_rate),
        baseline_ci=_interval(row.baseline.pass_rate_low, row.baseline.pass_rate_high),
        candidate_rate=_pct(row.candidate.pass_rate),
        candidate_ci=_interval(row.candidate.pass_rate_low, row.candidate.pass_rate_high),
        delta="—" if row.delta is None else f"{row.delta:+.1%}",
        delta_ci=_signed_interval(row.delta_low, row.delta_high),
        verdict=row.verdict,
        icon=ICONS[row.verdict],
        why=row.why,
        p="—" if row.p_adjusted is None else f"{row.p_adjusted:.3g}",
        p_note=(
            f"{row.test}, Holm-adjusted; unadjusted {row.p_value:.3g}"
            if row.p_value is not None
            else ""
        ),
        mde="—" if row.mde is None else f"±{row.mde:.1%}",
        cost="—" if row.delta_cost_per_case is None else f"{row.delta_cost_per_case:+.0%}",
        p95="—" if row.delta_p95 is None else f"{row.delta_p95:+.2f}s",
    )


def _case_row(kind: str, row: EvalComparison, case: CaseDiff) -> CaseRow:
    baseline, baseline_cut = _cap(case.baseline_output)
    candidate, candidate_cut = _cap(case.candidate_output)
    return CaseRow(
        kind=kind,
        eval=_key(row),
        case_id=case.case_id,
        baseline_score=_score(case.baseline_score),
        candidate_score=_score(case.candidate_score),
        baseline_output=baseline,
        candidate_output=candidate,
        baseline_cut=baseline_cut,
        candidate_cut=candidate_cut,
        reason=case.reason,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _notes(comparison: Comparison) -> list[str]:
    notes = []
    for row in comparison.evals:
        if row.changed:
            notes.append(f"{_key(row)}: the baseline used a different {', '.join(row.changed)}")
        if row.added or row.removed:
            notes.append(
                f"{_key(row)}: {_count(len(row.added), 'case')} added, {len(row.removed)} "
                "removed (not paired)"
            )
    return notes


# --- charts ----------------------------------------------------------------------------------


def rate_chart(row: EvalComparison) -> Chart:
    """Pass rate per side, with its 95% Wilson interval."""
    width, height = 340, 236
    left, right, top, bottom = 46, 14, 24, 54
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(rate: float) -> float:
        return top + plot_h * (1 - rate)

    els = [_el("rect", x=left, y=top, width=plot_w, height=plot_h, class_="plot")]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        els.append(_el("line", x1=left, x2=left + plot_w, y1=y(tick), y2=y(tick), class_="grid"))
        els.append(
            _el("text", f"{tick:.0%}", x=left - 6, y=y(tick) + 4, text_anchor="end", class_="tick")
        )
    bar_w = 64.0
    for index, (name, side) in enumerate(
        (("baseline", row.baseline), ("candidate", row.candidate))
    ):
        cx = left + plot_w * (0.28 + 0.44 * index)
        els.append(
            _el("text", name, x=cx, y=top + plot_h + 18, text_anchor="middle", class_="axis")
        )
        els.append(
            _el(
                "text",
                _short(side.model),
                title=side.model,
                x=cx,
                y=top + plot_h + 34,
                text_anchor="middle",
                class_="model",
            )
        )
        rate = side.pass_rate
        if rate is None:
            els.append(
                _el("text", "no graded cases", x=cx, y=y(0.5), text_anchor="middle", class_="none")
            )
            continue
        rate = min(max(rate, 0.0), 1.0)
        label = f"{name} ({side.model}): {_pct(side.pass_rate)}"
        if side.pass_rate_low is not None and side.pass_rate_high is not None:
            label += f", 95% interval {_interval(side.pass_rate_low, side.pass_rate_high)}"
        label += f", {side.cases} cases"
        els.append(
            _el(
                "rect",
                title=label,
                x=cx - bar_w / 2,
                y=y(rate) - (1 if rate == 0 else 0),
                width=bar_w,
                height=max(plot_h * rate, 1),
                class_=f"bar {name}",
            )
        )
        value_y = y(rate)
        low, high = side.pass_rate_low, side.pass_rate_high
        if low is not None and high is not None:
            low, high = min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0)
            els.append(_el("line", x1=cx, x2=cx, y1=y(low), y2=y(high), class_="whisker"))
            for end in (low, high):
                els.append(
                    _el("line", x1=cx - 9, x2=cx + 9, y1=y(end), y2=y(end), class_="whisker")
                )
            value_y = min(value_y, y(high))
        els.append(
            _el(
                "text",
                _pct(side.pass_rate),
                x=cx + bar_w / 2 + 4 if value_y < top + 14 else cx,
                y=max(value_y - 6, 12) if value_y >= top + 14 else top + 12,
                text_anchor="start" if value_y < top + 14 else "middle",
                class_="value",
            )
        )
    return Chart(
        width=width,
        height=height,
        label=(
            f"Pass rate of {_key(row)}: baseline {_pct(row.baseline.pass_rate)}, "
            f"candidate {_pct(row.candidate.pass_rate)}"
        ),
        elements=els,
    )


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at least ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * 10.0**exponent >= value * (1 - 1e-9):
            return step * 10.0**exponent
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class _Point:
    label: str
    side: str
    verdict: str
    cost: float
    rate: float
    low: float | None
    high: float | None
    title: str


def scatter(comparison: Comparison) -> Scatter:
    """Cost per case against pass rate, one point per eval and side, baseline → candidate."""
    points: dict[tuple[str, str, str, int, float, float], _Point] = {}
    pairs: list[tuple[_Point, _Point, str]] = []
    missing: list[str] = []
    for row in comparison.evals:
        placed: dict[str, _Point] = {}
        for side_name, side in (("baseline", row.baseline), ("candidate", row.candidate)):
            where = f"{_key(row)} ({side_name} {side.model})"
            if side.pass_rate is None:
                missing.append(f"{where}: no graded cases")
                continue
            if side.cost_per_case is None:
                missing.append(f"{where}: no cost")
                continue
            point = _Point(
                label=_short(
                    _test_name(row.eval)
                    if row.baseline.model == row.candidate.model
                    else f"{_test_name(row.eval)} · {side.model}"
                ),
                side=side_name,
                verdict=row.verdict,
                cost=side.cost_per_case,
                rate=side.pass_rate,
                low=side.pass_rate_low,
                high=side.pass_rate_high,
                title=f"{where}: {_pct(side.pass_rate)} at {money(side.cost_per_case)} per case",
            )
            key = (row.eval, side_name, side.model, side.cases, side.pass_rate, point.cost)
            placed[side_name] = points.setdefault(key, point)
        if "baseline" in placed and "candidate" in placed:
            pairs.append((placed["baseline"], placed["candidate"], row.verdict))
    if not points:
        return Scatter(chart=None, missing=missing)
    width, height = 760, 380
    left, right, top, bottom = 64, 24, 20, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    costs = [p.cost for p in points.values()]
    low_cost, high_cost = min(costs), max(costs)
    log_scale = low_cost > 0 and high_cost / low_cost >= 30
    if log_scale:
        lo_exp, hi_exp = math.floor(math.log10(low_cost)), math.ceil(math.log10(high_cost))
        ticks = [10.0**e for e in range(lo_exp, hi_exp + 1)]

        def x(cost: float) -> float:
            return left + plot_w * (math.log10(cost) - lo_exp) / (hi_exp - lo_exp)

    else:
        step = _nice(high_cost / 4) if high_cost > 0 else 0.001
        top_cost = step * max(1, math.ceil(high_cost / step - 1e-9))
        ticks = [step * i for i in range(round(top_cost / step) + 1)]

        def x(cost: float) -> float:
            return left + plot_w * cost / top_cost

    def y(rate: float) -> float:
        return top + plot_h * (1 - min(max(rate, 0.0), 1.0))

    els = [_el("rect", x=left, y=top, width=plot_w, height=plot_h, class_="plot")]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        els.append(_el("line", x1=left, x2=left + plot_w, y1=y(tick), y2=y(tick), class_="grid"))
        els.append(
            _el("text", f"{tick:.0%}", x=left - 6, y=y(tick) + 4, text_anchor="end", class_="tick")
        )
    for tick in ticks:
        els.append(_el("line", x1=x(tick), x2=x(tick), y1=top, y2=top + plot_h, class_="grid"))
        els.append(
            _el(
                "text",
                money(tick),
                x=x(tick),
                y=top + plot_h + 16,
                text_anchor="middle",
                class_="tick",
            )
        )
    els.append(
        _el(
            "text",
            "cost per case" + (" (log scale)" if log_scale else ""),
            x=left + plot_w / 2,
            y=height - 8,
            text_anchor="middle",
            class_="axis",
        )
    )
    els.append(
        _el(
            "text",
            "pass rate",
            x=14,
            y=top + plot_h / 2,
            text_anchor="middle",
            transform=f"rotate(-90 14 {_n(top + plot_h / 2)})",
            class_="axis",
        )
    )
    radius = 5.5
    for point in points.values():
        if point.low is not None and point.high is not None:
            px = x(point.cost)
            els.append(
                _el(
                    "line",
                    x1=px,
                    x2=px,
                    y1=y(point.low),
                    y2=y(point.high),
                    class_=f"whisker {point.side}",
                )
            )
    for start, end, verdict in pairs:
        x1, y1, x2, y2 = x(start.cost), y(start.rate), x(end.cost), y(end.rate)
        length = math.hypot(x2 - x1, y2 - y1)
        if length <= 2 * radius + 4:
            continue
        shrink = (radius + 2) / length
        els.append(
            _el(
                "line",
                x1=x1 + (x2 - x1) * shrink,
                y1=y1 + (y2 - y1) * shrink,
                x2=x2 - (x2 - x1) * shrink,
                y2=y2 - (y2 - y1) * shrink,
                class_=f"arrow {verdict}",
                marker_end=f"url(#mo-arrow-{verdict})",
            )
        )
    boxes: list[tuple[float, float, float, float]] = []
    for point in points.values():
        px, py = x(point.cost), y(point.rate)
        els.append(
            _el(
                "circle",
                title=point.title,
                cx=px,
                cy=py,
                r=radius,
                class_=f"point {point.side} {point.verdict}",
            )
        )
        boxes.append((px - radius, py - radius, px + radius, py + radius))
    # A baseline right next to its candidate shares the candidate's label (and the arrow).
    near = {
        id(start)
        for start, end, _ in pairs
        if math.hypot(x(end.cost) - x(start.cost), y(end.rate) - y(start.rate)) < 30
    }
    labelled = [p for p in points.values() if p.side == "candidate"]
    labelled += [p for p in points.values() if p.side == "baseline" and id(p) not in near]
    for point in labelled:
        px, py = x(point.cost), y(point.rate)
        text_w = 6.2 * len(point.label)
        right_side = px + 9 + text_w <= left + plot_w
        bx = px + 9 if right_side else px - 9 - text_w
        by = py + 4
        for shift in (0, -13, 13, -26, 26, -39, 39):
            box = (bx, by + shift - 10, bx + text_w, by + shift + 2)
            if not any(_overlap(box, other) for other in boxes):
                by += shift
                break
        boxes.append((bx, by - 10, bx + text_w, by + 2))
        els.append(
            _el(
                "text",
                point.label,
                title=point.title,
                x=px + 9 if right_side else px - 9,
                y=by,
                text_anchor="start" if right_side else "end",
                class_=f"label {point.side}",
            )
        )
    chart = Chart(
        width=width,
        height=height,
        label="Cost per case against pass rate, one point per eval and side",
        elements=els,
        arrows=bool(pairs),
    )
    return Scatter(chart=chart, log_scale=log_scale, missing=missing)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- the page --------------------------------------------------------------------------------


def run_headline(summary: RunSummary, gates: list[GateResult]) -> tuple[str, str]:
    """(tone, text) of a run without a baseline: its evals' verdicts and failed gates (an
    eval here is a row of the table: one eval on one model)."""
    failed = [row for row in summary.evals if row.verdict in ("fail", "error")]
    failed_gates = sum(not g.passed for g in gates)
    parts = []
    if failed:
        parts.append(f"{_count(len(failed), 'eval')} failed")
    if failed_gates:
        parts.append(f"{_count(failed_gates, 'gate')} failed")
    if parts:
        return "bad", "✗ " + ", ".join(parts)
    rows = _count(len(summary.evals), "eval")
    if not summary.evals:
        return "none", "No eval ran"
    if not gates and not any(row.verdict == "pass" for row in summary.evals):
        return "none", f"{rows} ran; no threshold or gate decides a verdict"
    return "good", f"✓ {rows}, none failed"


def _run_rows(summary: RunSummary) -> list[tuple[str, list[str]]]:
    """The run's summary table as the terminal shows it: (verdict, cells) per row."""
    return [(row.verdict, [fn(row) for _, fn in COLUMNS]) for row in summary.evals]


def render(
    comparison: Comparison | None,
    gates: list[GateResult] | None = None,
    *,
    title: str = "pytest-modelopt report",
    summary: RunSummary | None = None,
    viewer: dict[str, Any] | None = None,
    calibration: Sequence[JudgeCalibration] = (),
) -> str:
    """The whole report as one HTML document (a string), with nothing to load from outside.

    ``summary``: the run's summary table (required without a comparison); ``viewer``: the
    run viewer's document (``viewer.document``), every case of the run."""
    gates = gates or []
    if comparison is not None:
        tone, text = headline(comparison, gates)
    elif summary is not None:
        tone, text = run_headline(summary, gates)
    else:
        raise ValueError("an HTML report needs a comparison or a run summary")
    cases = [
        _case_row(kind, row, case)
        for row in (comparison.evals if comparison is not None else [])
        for kind, group in (("regressed", row.regressed_cases), ("fixed", row.fixed_cases))
        for case in group
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title,
        csp=CSP,
        tone=tone,
        headline=text,
        comparison=comparison,
        family=family_text(comparison) if comparison is not None else None,
        summary=summary,
        run_columns=[header for header, _ in COLUMNS],
        run_rows=_run_rows(summary) if summary is not None else [],
        rows=[_summary_row(row) for row in comparison.evals] if comparison else [],
        notes=_notes(comparison) if comparison else [],
        gates=gates,
        failed_gates=[g for g in gates if not g.passed],
        calibration=[(cal, cal.cells()) for cal in calibration],
        charts=[
            EvalChart(
                key=_key(row),
                verdict=row.verdict,
                icon=ICONS[row.verdict],
                delta=_summary_row(row).delta,
                chart=rate_chart(row),
            )
            for row in (comparison.evals if comparison is not None else [])
        ],
        scatter=scatter(comparison) if comparison is not None else Scatter(chart=None),
        cases=cases,
        regressed_count=sum(c.kind == "regressed" for c in cases),
        fixed_count=sum(c.kind == "fixed" for c in cases),
        cases_shown=CASES_SHOWN,
        verdicts=tuple(ICONS),
        # The one value not escaped by the template: JSON that script_json made safe for a
        # <script type="application/json"> element (HTML escaping would corrupt it there).
        viewer=None if viewer is None else Markup(script_json(viewer)),
        viewer_paired=bool(viewer and viewer.get("paired")),
    )
