"""The family Holm adjusts over: every eval × model comparison of one comparison.

A suite of 20 evals run on 3 models makes 60 comparisons; each row's adjusted p must be
Holm's over all 60 raw p-values (checked against statsmodels), and the verdicts must read
the adjusted p, so that at α = 0.05 the noise of 60 tests does not turn into regressions.
"""

from __future__ import annotations

import gc

import pytest
from statsmodels.stats.multitest import multipletests

from pytest_modelopt.verdict.compare import Comparison, compare_models, compare_runs, family_text
from tests.unit.comparisons import info, run_cases, suite


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare_runs(*suite())


def test_the_family_is_every_eval_and_model(comparison: Comparison) -> None:
    assert len(comparison.evals) == 60
    assert comparison.family_size == 60
    assert comparison.family_method == "holm"
    assert family_text(comparison) == "Holm over 60 comparisons, family-wise α = 0.05"


def test_adjusted_p_is_holm_over_the_family(
    comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)  # statsmodels' holm calls it
    raw = [row.p_value for row in comparison.evals]
    assert all(p is not None for p in raw)
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method="holm")
    assert [row.p_adjusted for row in comparison.evals] == pytest.approx(
        adjusted.tolist(), rel=1e-12, abs=1e-15
    )
    # the family matters: some rows are significant alone and not after Holm
    alone = sum(p is not None and p < 0.05 for p in raw)
    assert sum(reject) < alone
    for row, rejected in zip(comparison.evals, reject, strict=True):
        assert row.p_adjusted is not None
        assert row.p_value is not None
        assert row.p_adjusted >= row.p_value
        if row.verdict == "regressed":
            assert rejected


def test_rows_without_a_p_value_stay_out_of_the_family() -> None:
    (base_info, base), (cand_info, cand) = suite()
    cand = [c for c in cand if c.eval != "e00"]  # e00: no paired case on any model
    comparison = compare_runs((base_info, base), (cand_info, cand))
    assert comparison.family_size == 57
    assert all(r.p_value is None for r in comparison.evals if r.eval == "e00")


def test_models_of_one_run_make_one_family() -> None:
    records = []
    for i in range(4):
        teacher, passed = run_cases(f"e{i}", 0.9, 40, seed=i, model="teacher")
        records += teacher
        for k, student in enumerate(("s1", "s2")):
            records += run_cases(f"e{i}", -0.3, 40, seed=10 * i + k, model=student, base=passed)[0]
    comparison = compare_models(info("one"), records, "teacher")
    assert comparison.family_size == 8
    assert "Holm over 8 comparisons" in family_text(comparison)
