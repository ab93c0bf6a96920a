"""Every report names the family its p-values were adjusted over, and shows each row's own
p beside its adjusted p: a reader can see why p = 0.01 did not make a regression."""

from __future__ import annotations

import json
import re

import pytest

from pytest_modelopt.reports import markdown
from pytest_modelopt.reports.terminal import comparison_lines
from pytest_modelopt.verdict.compare import Comparison, compare_runs
from pytest_modelopt.verdict.judge import Policy, judge
from pytest_modelopt.verdict.summary import summarize
from tests.unit.comparisons import suite

FAMILY = "Holm over 60 comparisons, family-wise α = 0.05"


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare_runs(*suite())


def test_terminal_shows_the_family_and_both_p(comparison: Comparison) -> None:
    lines = comparison_lines(comparison, width=200)
    header = lines[0].split()
    assert header[header.index("verdict") + 1 : header.index("verdict") + 4] == [
        "p",
        "p",
        "adj",
    ]
    assert f"p adj: {FAMILY}" in lines
    rows = [line for line in lines if re.match(r"e\d\d +model-", line)]
    assert len(rows) == 60
    for row, line in zip(comparison.evals, rows, strict=True):
        assert row.p_value is not None
        assert row.p_adjusted is not None
        assert f" {row.p_value:.3g} " in line
        assert f" {row.p_adjusted:.3g} " in line


def test_markdown_shows_the_family_and_both_p(comparison: Comparison) -> None:
    text = markdown.render(comparison)
    assert FAMILY in text
    assert "| verdict | p | p adj |" in text
    for row in comparison.evals:
        assert row.p_value is not None
        assert row.p_adjusted is not None
        assert f"{row.verdict} | {row.p_value:.3g} | {row.p_adjusted:.3g} |" in text


def test_json_report_holds_the_family_and_both_p(comparison: Comparison) -> None:
    (_, _), (info, cases) = suite()
    document = json.loads(judge(summarize(info, cases), comparison, Policy()).model_dump_json())
    family = document["comparison"]
    assert (family["family_size"], family["family_method"], family["alpha"]) == (60, "holm", 0.05)
    rows = family["evals"]
    assert [(r["p_value"], r["p_adjusted"]) for r in rows] == [
        (r.p_value, r.p_adjusted) for r in comparison.evals
    ]


def test_a_report_written_before_the_family_was_recorded_still_reads(
    comparison: Comparison,
) -> None:
    old = comparison.model_dump(exclude={"family_size", "family_method"})
    again = Comparison.model_validate(old)
    assert again.family_size is None
    assert "Holm-adjusted across the evals compared" in markdown.render(again)


def test_html_names_the_family(comparison: Comparison) -> None:
    from html.parser import HTMLParser

    from pytest_modelopt.reports import html

    page = html.render(comparison, [])

    class Family(HTMLParser):
        text: list[str] = []  # noqa: RUF012 - one parser, one page
        inside = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.inside = ("id", "family") in attrs

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.text.append(data)
                self.inside = False

    parser = Family()
    parser.feed(page)
    assert parser.text == [FAMILY]
