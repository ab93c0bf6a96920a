"""The Markdown report: it says what the comparison says, safely, under GitHub's limit."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_modelopt.reports import markdown
from pytest_modelopt.verdict.compare import compare_runs
from pytest_modelopt.verdict.gates import check_comparison, parse_gate
from tests.unit.comparisons import Run, info, known_pair, run_cases


@pytest.fixture
def pair() -> tuple[Run, Run]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles."""
    return known_pair()


def test_markdown_report_says_the_same_and_is_safe(pair: tuple) -> None:
    (base_info, base), (cand_info, cand) = pair
    evil = "<script>alert(1)</script> @octocat **bold** | pipe\nnewline"
    cand = [c.model_copy(update={"output": evil}) if c.eval == "accuracy" else c for c in cand]
    comparison = compare_runs((base_info, base), (cand_info, cand))
    gates = check_comparison([parse_gate("regression<=0.02")], comparison)
    text = markdown.render(comparison, gates)
    assert text.startswith("### ❌ 1 eval regressed, 1 gate failed")
    assert "| accuracy | m | 200 |" in text
    assert "❌ regressed" in text
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "@octocat" not in text
    assert "@\u200doctocat" in text
    assert "\\*\\*bold\\*\\*" in text
    assert "<details><summary>accuracy (m):" in text
    assert len(text) < markdown.GITHUB_LIMIT


def test_markdown_stays_under_githubs_limit() -> None:
    long_output = "x" * 5000
    base, passed = run_cases("e", 1.0, 3000, seed=7, output=long_output)
    cand, _ = run_cases("e", -1.0, 3000, seed=8, base=passed, output=long_output)
    comparison = compare_runs((info("a"), base), (info("b"), cand))
    text = markdown.render(comparison)
    assert len(text) <= markdown.BUDGET + 200


def test_markdown_code_spans_and_summaries_carry_no_markdown_escapes(pair: Any) -> None:
    """GitHub shows escapes literally inside `code` and inside raw HTML such as <summary>."""
    base, cand = pair[0][1], pair[1][1]
    for record in cand:
        record.eval = record.eval.replace("accuracy", "test_x::acc_<b>")
    for record in base:
        record.eval = record.eval.replace("accuracy", "test_x::acc_<b>")
    comparison = compare_runs((info("base-run_1"), base), (info("cand-run_2"), cand))
    text = markdown.render(
        comparison, check_comparison([parse_gate("regression<=0.02")], comparison)
    )
    assert "`base-run_1`" in text
    assert "`regression<=0.02`" in text
    summaries = re.findall(r"<summary>(.*?)</summary>", text)
    assert summaries
    assert all("\\" not in s for s in summaries)
    assert "test_x::acc_&lt;b&gt;" in summaries[0]
