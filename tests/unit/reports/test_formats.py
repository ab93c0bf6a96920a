"""Every report format (terminal, JSON, Markdown, HTML) says the same verdicts."""

from __future__ import annotations

import re

import pytest

from pytest_modelopt.reports import markdown
from pytest_modelopt.verdict.compare import compare_runs
from pytest_modelopt.verdict.gates import check_comparison, parse_gate
from pytest_modelopt.verdict.summary import summarize
from tests.unit.comparisons import Run, known_pair


@pytest.fixture
def pair() -> tuple[Run, Run]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles."""
    return known_pair()


def test_all_four_formats_say_the_same(pair: tuple) -> None:
    """Terminal, JSON, Markdown and HTML agree on each eval's verdict."""
    import html as htmllib

    from pytest_modelopt.reports import html
    from pytest_modelopt.reports.terminal import comparison_lines
    from pytest_modelopt.verdict.document import EvalReport

    comparison = compare_runs(*pair)
    gates = check_comparison([parse_gate("regression<=0.02")], comparison)
    expected = {row.eval: row.verdict for row in comparison.evals}
    assert expected["accuracy"] == "regressed"

    terminal = "\n".join(comparison_lines(comparison))
    report = EvalReport.model_validate_json(
        EvalReport(
            verdict="fail",
            summary=summarize(pair[1][0], pair[1][1]),
            comparison=comparison,
            gates=gates,
        ).model_dump_json()
    )
    text = markdown.render(comparison, gates)
    page = htmllib.unescape(re.sub(r"<[^>]+>", " ", html.render(comparison, gates)))
    for name, verdict in expected.items():
        assert re.search(rf"^{name}\s.*\b{verdict.upper()}\b", terminal, re.MULTILINE)
        assert next(e for e in report.comparison.evals if e.eval == name).verdict == verdict
        assert re.search(rf"^\| {name} \|.*\| \S+ {verdict} \|", text, re.MULTILINE)
        assert re.search(rf"{name}\b.*?\b{verdict}\b", " ".join(page.split()))
