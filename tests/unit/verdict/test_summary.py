"""The summary: the case is the unit, its samples averaged within it."""

from __future__ import annotations

import pytest

from pytest_modelopt.records.models import RunInfo
from pytest_modelopt.verdict.summary import summarize
from tests.support.records import record


def test_summary_uses_the_case_as_unit_with_samples() -> None:
    info = RunInfo(run_id="r", started_at="now", plugin_version="0")
    cases = [
        record("a", "passed", 0),
        record("a", "passed", 1),
        record("a", "failed", 2, score=0.0),
        record("b", "failed", 0, score=0.0),
        record("b", "failed", 1, score=0.0),
        record("b", "failed", 2, score=0.0),
        record("c", "error", 0),
    ]
    (row,) = summarize(info, cases).evals
    assert (row.cases, row.samples, row.graded, row.errors) == (3, 7, 2, 1)
    assert row.pass_rate == pytest.approx((2 / 3 + 0) / 2)
    assert row.mean_score == pytest.approx((2 / 3 + 0) / 2)
    assert row.cost == pytest.approx(0.07)
    assert row.latency_p50 == pytest.approx(0.2)
