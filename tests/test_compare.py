"""Baseline vs candidate: verdicts, gates and the Markdown report on a known pair of runs."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from pytest_modelopt.records.models import CaseRecord, GradeRecord, RunInfo
from pytest_modelopt.reports import markdown
from pytest_modelopt.verdict.compare import compare_models, compare_runs
from pytest_modelopt.verdict.gates import GateError, check_comparison, check_run, parse_gate
from pytest_modelopt.verdict.summary import summarize


def run_cases(
    eval_name: str,
    rate: float,
    n: int,
    *,
    seed: int,
    model: str = "m",
    swaps: int = 0,
    base: list[bool] | None = None,
    output: str = "answer",
) -> tuple[list[CaseRecord], list[bool]]:
    """n cases passing at ``rate``; or, given ``base``, the same cases changed: ``swaps``
    passing cases fail and as many failing ones pass (noise, no net change), and with a
    negative ``rate`` that share of the passing cases fails (a real regression)."""
    rng = random.Random(seed)
    passed = base[:] if base is not None else [rng.random() < rate for _ in range(n)]
    if base is not None:
        ups = rng.sample([i for i, p in enumerate(passed) if not p], swaps)
        downs = rng.sample([i for i, p in enumerate(passed) if p], swaps)
        for i in ups + downs:
            passed[i] = not passed[i]
        if rate < 0:
            passed = [p and rng.random() > -rate for p in passed]
    records = [
        CaseRecord(
            eval=eval_name,
            nodeid=f"t::{eval_name}[{i}]",
            model=model,
            case_id=f"c{i:03d}",
            status="passed" if ok else "failed",
            output=f"{output} {i}",
            grades=[
                GradeRecord(name="g", score=float(ok), passed=ok, reason="" if ok else "wrong")
            ],
            latency_s=0.5,
            calls=1,
            cost=0.001,
        )
        for i, ok in enumerate(passed)
    ]
    return records, passed


def info(run_id: str) -> RunInfo:
    return RunInfo(run_id=run_id, started_at="2026-11-22T00:00:00+00:00", plugin_version="0")


@pytest.fixture
def pair() -> tuple[tuple[RunInfo, list[CaseRecord]], tuple[RunInfo, list[CaseRecord]]]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles (six
    cases fail that passed and six pass that failed)."""
    acc_base, acc = run_cases("accuracy", 0.9, 200, seed=1)
    tone_base, tone = run_cases("tone", 0.8, 200, seed=2)
    acc_cand, _ = run_cases("accuracy", -0.3, 200, seed=3, base=acc, output="worse")
    tone_cand, _ = run_cases("tone", 0.0, 200, seed=4, base=tone, swaps=6)
    return (info("base"), acc_base + tone_base), (info("cand"), acc_cand + tone_cand)


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


@pytest.mark.parametrize(
    ("expression", "metric", "op", "value", "relative", "eval_glob"),
    [
        ("pass_rate>=0.9", "pass_rate", ">=", 0.9, False, None),
        ("pass_rate_lower >= 80%", "pass_rate_lower", ">=", 0.8, False, None),
        ("regression<=0.02", "regression", "<=", 0.02, False, None),
        ("cost_per_case<=+10%", "cost_per_case", "<=", 0.1, True, None),
        ("cost_per_case<=$0.002", "cost_per_case", "<=", 0.002, False, None),
        ("p95_latency<=2.5s", "p95_latency", "<=", 2.5, False, None),
        ("errors==0@test_triage::*", "errors", "==", 0.0, False, "test_triage::*"),
    ],
)
def test_gate_syntax(
    expression: str, metric: str, op: str, value: float, relative: bool, eval_glob: str | None
) -> None:
    gate = parse_gate(expression)
    assert (gate.metric, gate.op, gate.value, gate.relative, gate.eval) == (
        metric,
        op,
        pytest.approx(value),
        relative,
        eval_glob,
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("pass rate >= 0.9", "write METRIC OP VALUE[@EVAL]"),
        ("accuracy>=0.9", "unknown metric 'accuracy'"),
        ("pass_rate>=high", "'high' is not a number"),
        ("pass_rate>=+10%", "only cost and latency gates can be relative"),
    ],
)
def test_bad_gates_say_how_to_write_them(expression: str, message: str) -> None:
    with pytest.raises(GateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_gate(expression)


def test_gates_on_a_run_and_on_a_comparison(pair: tuple) -> None:
    (_base_info, _base), (cand_info, cand) = pair
    rows = summarize(cand_info, cand).evals
    results = check_run([parse_gate("pass_rate>=0.7"), parse_gate("errors==0")], rows)
    failed = {(r.eval, r.gate) for r in results if not r.passed}
    assert failed == {("accuracy", "pass_rate>=0.7")}
    comparison = compare_runs(*pair)
    results = check_comparison(
        [parse_gate("regression<=0.02"), parse_gate("cost_per_case<=+10%")], comparison
    )
    by = {(r.eval, r.gate): r for r in results}
    assert not by[("accuracy", "regression<=0.02")].passed
    assert by[("tone", "regression<=0.02")].passed
    assert all(by[(e, "cost_per_case<=+10%")].passed for e in ("accuracy", "tone"))
    # a huge tolerance turns the same drop into "ok"
    lenient = check_comparison([parse_gate("regression<=0.9")], comparison)
    assert all(r.passed for r in lenient)


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


def test_all_four_formats_say_the_same(pair: tuple) -> None:
    """Terminal, JSON, Markdown and HTML agree on each eval's verdict."""
    import html as htmllib
    import re

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


def test_a_teachers_run_and_its_students_run_compare_model_against_model() -> None:
    teacher, passed = run_cases("accuracy", 0.9, 120, seed=5, model="teacher")
    student, _ = run_cases("accuracy", -0.3, 120, seed=6, base=passed, model="student")
    held_out = student[::5]  # the student is scored on its held-out cases only
    comparison = compare_runs((info("t"), teacher), (info("s"), held_out))
    (row,) = comparison.evals
    assert (row.baseline.model, row.candidate.model) == ("teacher", "student")
    assert row.paired == len(held_out)  # exactly the cases both runs scored
    assert len(row.removed) == len(teacher) - len(held_out)


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
