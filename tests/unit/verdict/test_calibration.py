"""Judge calibration: kappa against statsmodels, the corrected rate's interval by seeded
simulation, and the policy's decision (how many more labels, stale labels, other outputs,
labels of a whole case) through ``judge``, the one verdict policy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa
from statsmodels.stats.proportion import proportion_confint

from pytest_modelopt.records.labels import Label, output_sha256
from pytest_modelopt.records.models import CaseRecord, GradeRecord, RunInfo
from pytest_modelopt.verdict.calibration import calibrate
from pytest_modelopt.verdict.gates import CalibrationPolicy
from pytest_modelopt.verdict.judge import Policy, judge
from pytest_modelopt.verdict.stats import cohens_kappa, corrected_rate
from pytest_modelopt.verdict.summary import summarize

JUDGE = {"type": "label_model", "model": "j", "input": [], "labels": ["a", "b"]}


@pytest.mark.parametrize("seed", range(20))
def test_kappa_and_its_interval_match_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(1, 40, size=(2, 2))
    kappa, (low, high) = cohens_kappa(*(int(x) for x in table.ravel()))
    expected = sm_kappa(table)
    assert kappa == pytest.approx(expected.kappa, abs=1e-12)
    if expected.kappa_low > -1 and expected.kappa_upp < 1:
        assert low == pytest.approx(expected.kappa_low, abs=1e-9)
        assert high == pytest.approx(expected.kappa_upp, abs=1e-9)


def test_kappa_is_undefined_when_both_give_one_and_the_same_verdict() -> None:
    assert math.isnan(cohens_kappa(10, 0, 0, 0)[0])
    assert math.isnan(cohens_kappa(0, 0, 0, 0)[0])
    assert cohens_kappa(0, 0, 2, 0)[0] == 0.0  # one side constant: no agreement beyond chance
    assert cohens_kappa(30, 0, 0, 30) == (1.0, (1.0, 1.0))


def test_the_corrected_rate_undoes_a_known_judge_error() -> None:
    # TPR 0.9, TNR 0.8, true rate 0.6: the judge passes 0.6 * 0.9 + 0.4 * 0.2 = 0.62
    rate, _ = corrected_rate(0.62, 1000, (90, 100), (80, 100)) or (None, None)
    assert rate == pytest.approx(0.6)
    assert corrected_rate(0.5, 100, (50, 100), (50, 100)) is None  # a coin: nothing to undo
    assert corrected_rate(0.5, 100, (5, 5), (0, 0)) is None  # no human fails: no TNR


def test_the_corrected_rate_interval_covers_the_true_rate() -> None:
    """Seeded simulation over both samples (the run's cases and the labels): the 95%
    interval holds the true rate about 95% of the time."""
    rng = np.random.default_rng(17)
    truth, tpr, tnr, cases, labels = 0.7, 0.85, 0.9, 300, 60
    covered = trials = 0
    for _ in range(2000):
        observed = rng.binomial(cases, truth * tpr + (1 - truth) * (1 - tnr)) / cases
        found = corrected_rate(
            observed,
            cases,
            (int(rng.binomial(labels, tpr)), labels),
            (int(rng.binomial(labels, tnr)), labels),
        )
        if found is None:
            continue
        trials += 1
        covered += found[1].low <= truth <= found[1].high
    assert trials > 1900
    assert 0.93 <= covered / trials <= 0.98


def _case(i: int, judge_passed: bool, *, identity: str = "id1", **extra: Any) -> CaseRecord:
    grades = [
        GradeRecord(
            name="j",
            score=float(judge_passed),
            passed=judge_passed,
            grader=JUDGE,
            identity=identity,
        )
    ]
    grades += extra.pop("grades", [])
    return CaseRecord(
        eval="e",
        nodeid=f"t[{i}]",
        model="m",
        case_id=f"c{i}",
        status="passed" if judge_passed else "failed",
        output=f"out {i}",
        threshold=0.4,
        grades=grades,
        **extra,
    )


def _label(i: int, verdict: str, **fields: Any) -> Label:
    data: dict[str, Any] = {
        "eval": "e",
        "case_id": f"c{i}",
        "model": "m",
        "grader": "j",
        "grader_identity": "id1",
        "verdict": verdict,
        "reviewer": "ann",
        "labelled_at": "2026-12-07T17:05:00Z",
        "run_id": "r",
        "output_sha256": output_sha256(f"out {i}"),
    }
    data.update(fields)
    return Label.model_validate(data)


def _run(n: int, disagree: int = 0) -> tuple[list[CaseRecord], list[Label]]:
    """n cases the judge passes on even i; the human agrees except on the first
    ``disagree`` cases."""
    cases = [_case(i, i % 2 == 0) for i in range(n)]
    labels = [
        _label(
            i,
            ("pass" if i % 2 == 0 else "fail")
            if i >= disagree
            else ("fail" if i % 2 == 0 else "pass"),
        )
        for i in range(n)
    ]
    return cases, labels


POLICY = CalibrationPolicy(min_labels=30, min_kappa=0.6)


def test_agreement_figures_match_the_references() -> None:
    cases, labels = _run(50, disagree=6)
    (cal,) = calibrate(cases, labels, POLICY)
    assert (cal.both_pass, cal.human_only, cal.judge_only, cal.both_fail) == (22, 3, 3, 22)
    assert cal.accuracy == pytest.approx(44 / 50)
    assert (cal.accuracy_low, cal.accuracy_high) == pytest.approx(
        proportion_confint(44, 50, method="wilson")
    )
    assert (cal.tpr_low, cal.tpr_high) == pytest.approx(proportion_confint(22, 25, method="wilson"))
    assert cal.kappa == pytest.approx(sm_kappa(np.array([[22, 3], [3, 22]])).kappa)


def test_too_few_labels_need_the_difference() -> None:
    cases, labels = _run(60)
    (cal,) = calibrate(cases, labels[:10], POLICY)
    assert (cal.calibrated, cal.needed) == (False, 20)


def test_a_kappa_interval_below_the_bar_needs_labels_in_proportion() -> None:
    cases, labels = _run(30, disagree=4)
    (cal,) = calibrate(cases, labels, POLICY)
    assert cal.kappa is not None
    assert cal.kappa_low is not None
    assert cal.kappa > 0.6 > cal.kappa_low
    half = cal.kappa - cal.kappa_low
    assert cal.needed == math.ceil(30 * (half / (cal.kappa - 0.6)) ** 2) - 30
    # and that many more labels at the same agreement would do: 4 in 30 disagree
    more = 30 + cal.needed
    _k, (low, _) = cohens_kappa(
        round(more / 2 * 13 / 15),
        round(more / 2 * 2 / 15),
        round(more / 2 * 2 / 15),
        round(more / 2 * 13 / 15),
    )
    assert low >= 0.6 - 0.02


def test_a_judge_below_the_bar_cannot_be_saved_by_more_labels() -> None:
    cases, labels = _run(40, disagree=12)
    (cal,) = calibrate(cases, labels, POLICY)
    assert cal.calibrated is False
    assert cal.needed is None
    assert "more labels will not change that" in cal.why


def test_stale_labels_and_labels_of_other_outputs_do_not_count() -> None:
    cases, labels = _run(40)
    stale = [lab.model_copy(update={"grader_identity": "other"}) for lab in labels[:20]]
    moved = [lab.model_copy(update={"output_sha256": "0" * 64}) for lab in labels[20:30]]
    (cal,) = calibrate(cases, stale + moved + labels[30:], POLICY)
    assert (cal.labels, cal.stale, cal.other_outputs) == (10, 20, 10)
    assert "another version of this judge" in cal.why


def test_a_label_of_the_whole_case_counts_only_for_its_only_grader() -> None:
    whole = [
        _label(i, "pass" if i % 2 == 0 else "fail", grader=None, grader_identity=None)
        for i in range(30)
    ]
    alone = [_case(i, i % 2 == 0) for i in range(30)]
    (cal,) = calibrate(alone, whole, POLICY)
    assert cal.labels == 30
    assert cal.calibrated is True
    other = GradeRecord(name="exact", score=1.0, passed=True)
    shared = [_case(i, i % 2 == 0, grades=[other]) for i in range(30)]
    (cal,) = calibrate(shared, whole, POLICY)
    assert cal.labels == 0


def test_the_marker_policy_wins_for_its_eval() -> None:
    cases, labels = _run(20)
    cases = [
        c.model_copy(update={"calibration": {"min_labels": 10.0, "min_kappa": 0.5}}) for c in cases
    ]
    (cal,) = calibrate(cases, labels, POLICY)
    assert cal.calibrated is True
    assert cal.policy == CalibrationPolicy(min_labels=10, min_kappa=0.5)


def _info() -> RunInfo:
    return RunInfo(run_id="r", started_at="2026-12-07T17:00:00Z", plugin_version="0")


def test_only_judged_gates_become_inconclusive() -> None:
    cases, labels = _run(60)
    errored = CaseRecord(
        eval="e", nodeid="t[x]", model="m", case_id="x", status="error", threshold=0.4
    )
    cases.append(errored)
    summary = summarize(_info(), cases)
    policy = Policy(fail_on=("pass_rate>=0.9",), max_error_rate=0.0, calibration=POLICY)
    report = judge(summary, None, policy, cases=cases, labels=labels[:5])
    by_gate = {g.gate: g for g in report.gates}
    assert by_gate["pass_rate>=0.9"].inconclusive  # the judge decides it: it cannot
    assert not by_gate["error_rate<=0"].inconclusive  # errors are errors, judge or not
    assert report.verdict == "fail"
    assert [row.verdict for row in report.summary.evals] == ["inconclusive"]


def test_inconclusive_fails_the_run_only_when_told() -> None:
    cases, labels = _run(60)
    summary = summarize(_info(), cases)
    lenient = judge(summary, None, Policy(calibration=POLICY), cases=cases, labels=labels[:5])
    assert lenient.verdict == "pass"
    assert lenient.uncalibrated
    strict = Policy(calibration=POLICY, fail_inconclusive=True)
    assert judge(summary, None, strict, cases=cases, labels=labels[:5]).verdict == "fail"
    calibrated = judge(summary, None, strict, cases=cases, labels=labels)
    assert calibrated.verdict == "pass"
    assert not calibrated.uncalibrated


def test_without_a_policy_judges_gate_as_before_and_agreement_is_reported() -> None:
    cases, labels = _run(60)
    summary = summarize(_info(), cases)
    report = judge(summary, None, Policy(), cases=cases, labels=labels[:5])
    assert report.summary.evals[0].verdict == "pass"
    (cal,) = report.calibration
    assert cal.calibrated is None
    assert cal.labels == 5


def test_labels_of_one_verdict_that_the_judge_shares_need_the_other() -> None:
    cases = [_case(i, True) for i in range(30)]
    labels = [_label(i, "pass") for i in range(30)]
    (cal,) = calibrate(cases, labels, POLICY)
    assert cal.kappa is None
    assert (cal.calibrated, cal.needed) == (False, 1)
    assert "label cases that fail too" in cal.why


def test_every_report_shows_the_calibration_beside_the_verdict() -> None:
    from pytest_modelopt.reports import html, markdown, terminal
    from pytest_modelopt.verdict.compare import compare_runs

    cases, labels = _run(60)
    summary = summarize(_info(), cases)
    report = judge(summary, None, Policy(calibration=POLICY), cases=cases, labels=labels[:10])
    md = markdown.render_report(report)
    assert md.startswith("> [!WARNING]\n> **1 eval verdict inconclusive (judge not calibrated)**")
    assert "needs 20 more labels" in md
    assert "| e | `j` | 10 | 100% [72%, 100%] |" in md
    assert "❔ inconclusive" in md
    lines = terminal.summary_lines(terminal.SummaryParts(summary=summary, report=report))
    text = [line.text for line in lines]
    assert any(t.startswith("INCONCLUSIVE eval e (judge not calibrated)") for t in text)
    assert any("INCONCLUSIVE" in t and t.startswith("e ") for t in text)  # the table's verdict
    comparison = compare_runs((_info(), cases), (_info(), cases))
    page = html.render(comparison, report.gates, calibration=report.calibration)
    assert "inconclusive (judge not calibrated)</strong>: 10 labels" in page
    calibrated = judge(summary, None, Policy(calibration=POLICY), cases=cases, labels=labels)
    md = markdown.render_report(calibrated)
    assert "[!WARNING]" not in md
    assert "Judge-corrected pass rates" in md
