"""Baseline vs candidate on a known pair of runs: regressions, wobble, Holm, added and
removed cases, changed prompts, models compared with each other.
"""

from __future__ import annotations

import pytest

from pytest_modelopt.records.models import CaseRecord, GradeRecord
from pytest_modelopt.verdict.compare import compare_models, compare_runs
from tests.unit.comparisons import Run, info, known_pair, run_cases


@pytest.fixture
def pair() -> tuple[Run, Run]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles."""
    return known_pair()


def test_true_regression_is_called_and_wobble_is_not(pair: tuple) -> None:
    comparison = compare_runs(*pair)
    verdicts = {row.eval: row.verdict for row in comparison.evals}
    assert verdicts["accuracy"] == "regressed"
    assert verdicts["tone"] in ("ok", "inconclusive")
    accuracy = next(r for r in comparison.evals if r.eval == "accuracy")
    assert accuracy.delta is not None
    assert accuracy.delta < -0.2
    assert accuracy.delta_high is not None
    assert accuracy.delta_high < 0
    assert accuracy.test == "McNemar mid-p"
    assert accuracy.p_adjusted is not None
    assert accuracy.p_adjusted < 1e-6
    assert accuracy.mde is not None
    assert 0 < accuracy.mde < 0.2
    assert accuracy.regressed_cases
    assert not accuracy.fixed_cases
    assert accuracy.regressed_cases[0].candidate_output.startswith("worse")


def test_holm_adjusts_across_evals(pair: tuple) -> None:
    comparison = compare_runs(*pair)
    for row in comparison.evals:
        assert row.p_value is not None
        assert row.p_adjusted is not None
        assert row.p_adjusted >= row.p_value


def test_added_removed_cases_are_listed(pair: tuple) -> None:
    (base_info, base), (cand_info, cand) = pair
    cand = [c for c in cand if c.case_id != "c000"] + [
        c.model_copy(update={"case_id": "new1"}) for c in cand[:1]
    ]
    comparison = compare_runs((base_info, base), (cand_info, cand))
    accuracy = next(r for r in comparison.evals if r.eval == "accuracy")
    assert accuracy.removed == ["c000"]
    assert accuracy.added == ["new1"]
    assert accuracy.paired == 199


def test_changed_prompt_is_flagged(pair: tuple) -> None:
    (base_info, base), (cand_info, cand) = pair
    base = [c.model_copy(update={"fingerprint": {"prompt": "aaa", "dataset": "d"}}) for c in base]
    cand = [c.model_copy(update={"fingerprint": {"prompt": "bbb", "dataset": "d"}}) for c in cand]
    comparison = compare_runs((base_info, base), (cand_info, cand))
    assert all(row.changed == ["prompt"] for row in comparison.evals)


def test_two_models_in_one_run() -> None:
    teacher, passed = run_cases("e", 0.9, 120, seed=5, model="teacher")
    student, _ = run_cases("e", -0.5, 120, seed=6, model="student", base=passed)
    comparison = compare_models(info("r"), teacher + student, "teacher")
    (row,) = comparison.evals
    assert (row.baseline.model, row.candidate.model, row.verdict) == (
        "teacher",
        "student",
        "regressed",
    )


def test_samples_average_within_the_case() -> None:
    records = []
    for case in range(40):
        for sample in range(4):
            ok = sample < (3 if case % 2 else 1)
            records.append(
                CaseRecord(
                    eval="e",
                    nodeid=f"t[{case}-{sample}]",
                    model="m",
                    case_id=f"c{case}",
                    sample=sample,
                    status="passed" if ok else "failed",
                    grades=[GradeRecord(name="g", score=float(ok), passed=ok)],
                )
            )
    comparison = compare_runs((info("a"), records), (info("b"), records))
    (row,) = comparison.evals
    assert row.test == "paired bootstrap"  # case pass rates are 0.25 / 0.75, not 0 / 1
    assert row.delta == 0
    # the bootstrap of identical runs collapses to [0, 0]; 40 cases cannot see a 2% drop
    assert (row.delta_low, row.delta_high) == (0, 0)
    assert row.mde is not None
    assert row.mde > 0.02
    assert row.verdict == "inconclusive"
    # at a tolerance they can see, the same runs are ok
    wide = compare_runs((info("a"), records), (info("b"), records), tolerance=row.mde)
    assert wide.evals[0].verdict == "ok"


def test_a_teachers_run_and_its_students_run_compare_model_against_model() -> None:
    teacher, passed = run_cases("accuracy", 0.9, 120, seed=5, model="teacher")
    student, _ = run_cases("accuracy", -0.3, 120, seed=6, base=passed, model="student")
    held_out = student[::5]  # the student is scored on its held-out cases only
    comparison = compare_runs((info("t"), teacher), (info("s"), held_out))
    (row,) = comparison.evals
    assert (row.baseline.model, row.candidate.model) == ("teacher", "student")
    assert row.paired == len(held_out)  # exactly the cases both runs scored
    assert len(row.removed) == len(teacher) - len(held_out)
