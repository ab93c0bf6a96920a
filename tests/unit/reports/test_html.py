"""The HTML report: escaping, self-containment, edge cases, and a real browser (Chromium)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from pytest_modelopt.reports import html as html_report
from pytest_modelopt.verdict.compare import CaseDiff, Comparison, EvalComparison, Side
from pytest_modelopt.verdict.gates import GateResult
from tests.support.browser import CHROMIUM_ARGS, watch
from tests.support.browser import chromium as find_chromium

if TYPE_CHECKING:
    from pathlib import Path


TRIAGE = "test_support.py::test_triage"


SUMMARY = "test_support.py::test_summary"


EVIL = (
    'Escalate to tier 2. <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned=2">'
    " cc @octocat"
)


def _side(model: str, cases: int, rate: float, low: float, high: float, **kw: Any) -> Side:
    values: dict[str, Any] = {
        "model": model,
        "cases": cases,
        "errors": 0,
        "pass_rate": rate,
        "pass_rate_low": low,
        "pass_rate_high": high,
        "mean_score": rate,
        "cost_per_case": 0.00042,
        "latency_p50": 0.61,
        "latency_p95": 1.42,
    }
    values.update(kw)
    return Side(**values)


def make_comparison() -> Comparison:
    triage = EvalComparison(
        eval=TRIAGE,
        baseline=_side("gpt-4o-mini", 120, 0.867, 0.795, 0.916, cost_per_case=0.000412),
        candidate=_side(
            "gpt-4o-mini", 120, 0.708, 0.621, 0.782, cost_per_case=0.000556, latency_p95=1.84
        ),
        paired=120,
        delta=-0.158,
        delta_low=-0.242,
        delta_high=-0.075,
        delta_score=-0.131,
        p_value=0.00021,
        p_adjusted=0.00042,
        test="McNemar mid-p",
        mde=0.097,
        verdict="regressed",
        why="dropped 15.8% > tolerance 2.0%, p=0.00042 (McNemar mid-p, Holm-adjusted)",
        delta_cost_per_case=0.35,
        delta_p95=0.42,
        regressed_cases=[
            CaseDiff(
                case_id="refund-angry-042",
                baseline_score=1.0,
                candidate_score=0.0,
                baseline_output='{"queue": "billing", "priority": "high"}',
                candidate_output=EVIL,
                reason="expected queue 'billing', got 'tier2'",
            ),
            CaseDiff(
                case_id="login-loop-007",
                baseline_score=1.0,
                candidate_score=0.0,
                baseline_output='{"queue": "auth", "priority": "medium"}',
                candidate_output='{"queue": "general", "priority": "low"}',
                reason="expected queue 'auth', got 'general'",
            ),
            CaseDiff(
                case_id="outage-eu-west-113",
                baseline_score=1.0,
                candidate_score=0.0,
                baseline_output='{"queue": "incident", "priority": "urgent"}',
                candidate_output=None,
                reason="the model returned nothing",
            ),
        ],
        fixed_cases=[
            CaseDiff(
                case_id="invoice-typo-018",
                baseline_score=0.0,
                candidate_score=1.0,
                baseline_output='{"queue": "general"}',
                candidate_output='{"queue": "billing", "priority": "low"}',
            ),
        ],
        changed=["prompt"],
    )
    summary = EvalComparison(
        eval=SUMMARY,
        baseline=_side("gpt-4o-mini", 80, 0.912, 0.830, 0.957, cost_per_case=0.00121),
        candidate=_side("gpt-4o-mini", 80, 0.925, 0.846, 0.965, cost_per_case=0.00118),
        paired=80,
        delta=0.0125,
        delta_low=-0.025,
        delta_high=0.05,
        delta_score=0.008,
        p_value=0.62,
        p_adjusted=0.62,
        test="McNemar mid-p",
        mde=0.061,
        verdict="ok",
        why="no drop beyond 2.0% (interval from -2.5%), p=0.62 (McNemar mid-p, Holm-adjusted)",
        delta_cost_per_case=-0.025,
        delta_p95=-0.05,
        fixed_cases=[
            CaseDiff(
                case_id="long-thread-031",
                baseline_score=0.4,
                candidate_score=0.9,
                baseline_output="The customer wants a refund.",
                candidate_output="The customer asks for a refund of invoice #4411 after a "
                "double charge; agent promised a callback.",
            ),
        ],
    )
    return Comparison(
        baseline_run="20250101-120000-main",
        candidate_run="20250102-093000-pr-57",
        tolerance=0.02,
        alpha=0.05,
        evals=[triage, summary],
    )


def make_gates() -> list[GateResult]:
    return [
        GateResult(
            gate="regression<=0.02",
            eval=TRIAGE,
            model="gpt-4o-mini",
            passed=False,
            actual="-15.8%",
            message="regressed: dropped 15.8% > tolerance 2.0%",
        ),
        GateResult(
            gate="regression<=0.02",
            eval=SUMMARY,
            model="gpt-4o-mini",
            passed=True,
            actual="+1.2%",
            message="ok: no drop beyond 2.0%",
        ),
    ]


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def test_model_output_is_escaped_not_markup() -> None:
    page = html_report.render(make_comparison(), make_gates())
    assert "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in page
    assert not re.search(r"<[a-z][^<>]*\sonerror\s*=", page, re.IGNORECASE)
    assert "@octocat" in page
    tags = _parse(page)
    assert not [t for t, _ in tags.tags if t in ("img", "iframe", "object", "embed")]
    handlers = [(t, name) for t, attrs in tags.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    assert len(tags.scripts) == 1  # the page's own filter script, and no other
    assert "__pwned" not in tags.scripts[0]
    assert "innerHTML" not in tags.scripts[0]


def test_titles_and_names_are_escaped_too() -> None:
    comparison = make_comparison()
    comparison.evals[0].eval = "test_x.py::test_<b>bold</b>"
    comparison.evals[0].baseline.model = 'evil" onload="x'
    page = html_report.render(comparison, title="<i>report</i> & more")
    assert "<title>&lt;i&gt;report&lt;/i&gt; &amp; more</title>" in page
    assert "<b>bold</b>" not in page
    assert 'evil" onload' not in page
    assert not [name for _, attrs in _parse(page).tags for name in attrs if name.startswith("on")]


def test_page_is_self_contained_with_a_strict_csp() -> None:
    page = html_report.render(make_comparison(), make_gates())
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page
    assert "https://" not in page
    tags = _parse(page)
    csp = [a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv")]
    assert csp == [html_report.CSP]
    assert csp[0].startswith(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    )
    links = [(t, a) for t, a in tags.tags if "src" in a or ("href" in a and t != "link")]
    assert links == []
    assert [a["href"] for t, a in tags.tags if t == "link"] == ["data:,"]


def test_module_does_not_import_pytest() -> None:
    code = (
        "import sys; import pytest_modelopt.reports.html; "
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_gates_and_charts() -> None:
    page = html_report.render(make_comparison(), make_gates())
    assert "✗ 1 eval regressed, 1 gate failed" in page
    assert page.count('<tr data-verdict="') == 2
    for text in (
        "86.7%",
        "[79.5%, 91.6%]",
        "70.8%",
        "-15.8%",
        "[-24.2%, -7.5%]",
        "0.00042",
        "±9.7%",
        "+35%",
        "+0.42s",
        "-2%",
        "-0.05s",
    ):
        assert text in page, text
    assert "1 of 2 gates failed." in page
    assert "the baseline used a different prompt" in page
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert len(svgs) == 3  # a chart per eval and the scatter
    for svg in svgs[:2]:
        assert svg.count("<rect") >= 3  # the plot area and a bar per side
    assert svgs[2].count("<circle") == 4
    assert "$0.000412 per case" in page
    assert re.findall(r'<tr class="case" data-kind="(\w+)"', page) == [
        "regressed",
        "regressed",
        "regressed",
        "fixed",
        "fixed",
    ]


def test_zero_evals() -> None:
    comparison = Comparison(
        baseline_run="a", candidate_run="b", tolerance=0.02, alpha=0.05, evals=[]
    )
    page = html_report.render(comparison)
    assert "No evals were compared" in page
    assert "<svg" not in page
    assert "<script" not in page
    assert "No paired case changed" in page
    _parse(page)


def test_evals_without_paired_cases_or_costs() -> None:
    empty = Side(
        model="m",
        cases=0,
        errors=3,
        pass_rate=None,
        pass_rate_low=None,
        pass_rate_high=None,
        mean_score=None,
        cost_per_case=None,
        latency_p50=None,
        latency_p95=None,
    )
    unpaired = EvalComparison(
        eval="test_new.py::test_new",
        baseline=empty,
        candidate=_side("m", 10, 0.6, 0.31, 0.83, cost_per_case=None),
        paired=0,
        added=[f"c{i}" for i in range(10)],
        why="no case graded on both sides",
    )
    comparison = Comparison(
        baseline_run="a", candidate_run="b", tolerance=0.02, alpha=0.05, evals=[unpaired]
    )
    page = html_report.render(comparison, [])
    assert "no graded cases" in page
    assert "⚠ No regression found; 1 inconclusive" in page
    assert "No cost was recorded for any eval" in page
    assert "(baseline m): no graded cases" in page
    assert "(candidate m): no cost" in page
    assert "10 cases added, 0 removed" in page
    assert page.count("<svg") == 1
    assert "Gates" not in page


def test_partly_missing_cost_plots_the_rest_with_a_note() -> None:
    comparison = make_comparison()
    comparison.evals[1].candidate.cost_per_case = None
    page = html_report.render(comparison)
    scatter = re.search(r'<figure class="scatter".*?</figure>', page, re.DOTALL)
    assert scatter is not None
    assert scatter.group(0).count("<circle") == 3
    assert f"{SUMMARY} (candidate gpt-4o-mini): no cost" in page


def test_wide_cost_range_uses_a_log_scale() -> None:
    comparison = make_comparison()
    comparison.evals[1].candidate.cost_per_case = 0.25
    page = html_report.render(comparison)
    assert "cost per case (log scale)" in page
    assert "$0.0001<" in page
    assert "$1.00" in page


def test_money() -> None:
    assert html_report.money(0) == "$0"
    assert html_report.money(0.00042) == "$0.00042"
    assert html_report.money(0.000412) == "$0.000412"
    assert html_report.money(0.0001) == "$0.0001"
    assert html_report.money(0.0123) == "$0.0123"
    assert html_report.money(0.5) == "$0.50"
    assert html_report.money(1234.5) == "$1,234.50"


def test_a_thousand_cases_render_quickly() -> None:
    comparison = make_comparison()
    row = comparison.evals[0]
    row.regressed_cases = [
        CaseDiff(
            case_id=f"case-{i:04d}",
            baseline_score=1.0,
            candidate_score=0.0,
            baseline_output=f"baseline answer {i} " * 20,
            candidate_output=f"candidate answer {i} " * 20,
        )
        for i in range(500)
    ]
    row.fixed_cases = [
        CaseDiff(
            case_id=f"case-{i:04d}",
            baseline_score=0.0,
            candidate_score=1.0,
            baseline_output="x" * (html_report.OUTPUT_CHARS + 10),
            candidate_output="",
        )
        for i in range(500, 1000)
    ]
    comparison.evals[1].fixed_cases = []
    started = time.perf_counter()
    page = html_report.render(comparison)
    assert time.perf_counter() - started < 5
    assert page.count('<tr class="case"') == 1000
    assert "… 10 more characters" in page
    assert "(empty)" in page


def test_in_chromium(tmp_path: Path) -> None:
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    report.write_text(html_report.render(make_comparison(), make_gates()), encoding="utf-8")
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            problems = watch(page, report)
            page.on(
                "requestfailed",
                lambda request: failures.append(f"{request.url} {request.failure}"),
            )
            page.goto(report.as_uri())

            rows = page.locator("#summary tbody tr")
            assert rows.count() == 2
            assert TRIAGE in rows.nth(0).inner_text()
            assert "regressed" in rows.nth(0).inner_text()
            assert SUMMARY in rows.nth(1).inner_text()
            assert "ok" in rows.nth(1).inner_text()
            assert "1 eval regressed, 1 gate failed" in page.locator("#headline").inner_text()
            assert page.locator("#gates tbody tr").count() == 1

            charts = page.locator("figure.rate-chart svg, #scatter svg")
            assert charts.count() == 3
            for i in range(charts.count()):
                chart = charts.nth(i)
                box = chart.bounding_box()
                assert box is not None
                assert box["width"] > 100
                assert box["height"] > 100
                assert chart.locator("rect, circle").count() >= 1
                bar = chart.locator("rect.bar, circle.point").first
                bar_box = bar.bounding_box()
                assert bar_box is not None
                assert bar_box["width"] > 0
                assert bar_box["height"] > 0
            assert page.locator("#scatter circle.point").count() == 4

            cases = page.locator("#cases tbody tr.case")
            visible = page.locator("#cases tbody tr.case:visible")
            assert cases.count() == 5
            assert visible.count() == 5
            assert page.locator("#case-count").inner_text() == "showing 5 of 5"

            evil = page.locator("td.out", has_text="<script>window.__pwned = 1</script>")
            assert evil.count() == 1
            assert evil.is_visible()
            assert "@octocat" in evil.inner_text()
            assert page.evaluate("typeof window.__pwned") == "undefined"

            page.fill("#case-filter", "OCTOCAT")
            assert visible.count() == 1
            assert "refund-angry-042" in visible.first.inner_text()
            page.fill("#case-filter", "queue")
            assert visible.count() == 4  # every case with "queue" in an output
            page.fill("#case-filter", "no such text anywhere")
            assert visible.count() == 0
            assert page.locator("#case-empty").is_visible()
            page.fill("#case-filter", "")
            assert visible.count() == 5
            assert not page.locator("#case-empty").is_visible()

            page.click("button[data-kind=fixed]")
            assert visible.count() == 2
            assert page.locator("button[data-kind=fixed]").get_attribute("aria-pressed") == "true"
            page.fill("#case-filter", "invoice")
            assert visible.count() == 2  # invoice-typo-018 and the summary mentioning #4411
            page.fill("#case-filter", "typo")
            assert visible.count() == 1
            page.fill("#case-filter", "")
            page.click("button[data-kind=regressed]")
            assert visible.count() == 3
            assert all(visible.nth(i).get_attribute("data-kind") == "regressed" for i in range(3))
            page.click("button[data-kind=all]")
            assert visible.count() == 5

            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert problems == []

            # The CSP is in force: an image from elsewhere is refused, never fetched.
            directive = page.evaluate(
                """() => new Promise((resolve) => {
                    document.addEventListener("securitypolicyviolation",
                        (event) => resolve(event.effectiveDirective));
                    const img = document.createElement("img");
                    img.src = "http://127.0.0.1:9/pixel.png";
                    document.body.appendChild(img);
                })"""
            )
            assert directive == "img-src"
            page.wait_for_timeout(100)
            assert len(failures) == 1
            assert failures[0].startswith("http://127.0.0.1:9/pixel.png ")
            assert "csp" in failures[0].lower()  # "csp" or net::ERR_BLOCKED_BY_CSP
        finally:
            browser.close()
