"""Training sets from run records: SFT, DPO and RFT examples, holdout, hooks."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders.base import from_openai
from pytest_modelopt.optimize.training_data import (
    Selection,
    TrainingDataError,
    dpo,
    in_holdout,
    reward_grader,
    rft,
    sft,
)
from pytest_modelopt.records.models import CaseRecord, GradeRecord

PROMPT = [{"role": "system", "content": "Classify the ticket."}]


def record(
    case: str,
    output: str,
    *,
    passed: bool = True,
    model: str = "teacher",
    eval: str = "test_x::test_category",
    sample: int = 0,
    score: float | None = None,
    item: dict[str, Any] | None = None,
    grader: dict[str, Any] | None = None,
) -> CaseRecord:
    grade_score = score if score is not None else float(passed)
    return CaseRecord(
        eval=eval,
        nodeid=f"t.py::x[{model}-{case}-{sample}]",
        model=model,
        case_id=case,
        sample=sample,
        status="passed" if passed else "failed",
        input=[*PROMPT, {"role": "user", "content": f"ticket {case}"}],
        output=output,
        item=item or {"id": case, "category": "billing"},
        grades=[GradeRecord(name="check", score=grade_score, passed=passed, grader=grader)],
    )


NO_HOLDOUT = Selection(holdout_fraction=0.0)


def test_holdout_split_is_deterministic_and_near_its_fraction() -> None:
    ids = [f"case-{i}" for i in range(2000)]
    first = [i for i in ids if in_holdout(i, 0.2)]
    assert first == [i for i in ids if in_holdout(i, 0.2)]  # same answer every time
    assert 0.17 < len(first) / len(ids) < 0.23
    assert not any(in_holdout(i, 0.0) for i in ids)
    other_salt = [i for i in ids if in_holdout(i, 0.2, salt="other")]
    assert other_salt != first  # the salt reshuffles, deterministically


def test_sft_keeps_the_teachers_passing_answers_and_never_a_holdout_case() -> None:
    records = [record(f"c{i}", "billing", passed=i % 4 != 0) for i in range(40)]
    records += [record(f"c{i}", "bug", model="student") for i in range(40)]
    selection = Selection(teacher="teacher", holdout_fraction=0.25)
    data = sft(records, selection)
    held = {f"c{i}" for i in range(40) if in_holdout(f"c{i}", 0.25)}
    assert held, "the fixture must hold some cases out"
    assert set(data.holdout_cases) == held  # failing cases are held out too
    assert not set(data.case_ids) & held
    passing = {f"c{i}" for i in range(40) if i % 4 != 0}
    assert set(data.case_ids) == passing - held
    for example in data.examples:
        assert example["messages"][-1] == {"role": "assistant", "content": "billing"}
        assert example["messages"][:-1][0] == PROMPT[0]
    assert data.skipped["did not pass"] == 10


def test_sft_takes_each_cases_best_sample_and_honours_min_score() -> None:
    records = [
        record("c1", "meh", score=0.6, sample=0),
        record("c1", "best", score=0.9, sample=1),
        record("c2", "low", score=0.5),
    ]
    data = sft(records, Selection(holdout_fraction=0.0, min_score=0.7))
    assert [e["messages"][-1]["content"] for e in data.examples] == ["best"]
    assert data.skipped == {"below --min-score": 2}  # c1 sample 0 and c2


def test_sft_needs_a_teacher_when_the_run_has_several_models() -> None:
    records = [record("c1", "a"), record("c1", "b", model="other")]
    with pytest.raises(TrainingDataError, match="--teacher"):
        sft(records, NO_HOLDOUT)
    with pytest.raises(TrainingDataError, match="no cases of model 'nobody'"):
        sft(records, Selection(teacher="nobody"))


def test_a_hook_can_redact_or_drop_examples() -> None:
    records = [record(f"c{i}", f"mail me at a{i}@x.com") for i in range(5)]

    def hook(example: dict[str, Any], rec: CaseRecord, method: str) -> dict[str, Any] | None:
        if rec.case_id == "c0":
            return None
        example["messages"][-1]["content"] = "mail me at <redacted>"
        return example

    data = sft(records, NO_HOLDOUT, hook)
    assert data.case_ids == ["c1", "c2", "c3", "c4"]
    assert {e["messages"][-1]["content"] for e in data.examples} == {"mail me at <redacted>"}
    assert data.skipped == {"dropped by the pytest_modelopt_training_example hook": 1}


def test_sft_writes_an_answer_once_when_two_evals_share_prompt_and_answer() -> None:
    records = [record("c1", "billing", eval=name) for name in ("e::a", "e::b")]
    data = sft(records, NO_HOLDOUT)
    assert len(data.examples) == 1
    assert data.skipped == {"duplicate of another example": 1}


def test_dpo_prefers_a_passing_answer_over_a_failing_one_for_the_same_prompt() -> None:
    records = [
        record("c1", "billing", model="strong"),
        record("c1", "shipping", model="weak", passed=False),
        record("c2", "billing", model="strong", sample=0),
        record("c2", "bug", model="strong", sample=1, passed=False),
        record("c3", "billing", model="strong"),  # nothing failed: no pair
    ]
    data = dpo(records, NO_HOLDOUT)
    assert data.examples == [
        {
            "input": {"messages": [*PROMPT, {"role": "user", "content": "ticket c1"}]},
            "preferred_output": [{"role": "assistant", "content": "billing"}],
            "non_preferred_output": [{"role": "assistant", "content": "shipping"}],
        },
        {
            "input": {"messages": [*PROMPT, {"role": "user", "content": "ticket c2"}]},
            "preferred_output": [{"role": "assistant", "content": "billing"}],
            "non_preferred_output": [{"role": "assistant", "content": "bug"}],
        },
    ]
    assert data.skipped == {"no passing-and-failing pair": 1}


def test_rft_reward_is_the_evals_grader_with_the_case_fields_as_templates() -> None:
    rows = [{"id": f"c{i}", "category": ["billing", "bug"][i % 2]} for i in range(12)]
    records = []
    for row in rows:
        grader = graders.string_check(reference=row["category"], operation="ilike", name="check")
        output = "billing"
        grade = grader.grade(output, row)
        records.append(
            record(row["id"], output, passed=grade.passed, item=row, grader=grader.to_openai())
        )
    data = rft(records, NO_HOLDOUT)
    assert data.grader is not None
    assert data.grader["reference"] == "{{ item.category }}"
    rebuilt = from_openai(data.grader)  # the reward round-trips and grades as the eval did
    for example, rec in zip(data.examples, records, strict=True):
        fields = {k: v for k, v in example.items() if k != "messages"}
        assert example["messages"][-1]["role"] == "user"
        assert rebuilt.grade(rec.output, fields).passed == (rec.status == "passed")


def test_rft_leaves_out_graders_it_cannot_export_and_says_so() -> None:
    exported = graders.string_check(reference="{{ item.category }}", name="check").to_openai()
    records = [
        record("c1", "billing", grader=exported),
        record("c2", "billing", grader=exported),
    ]
    records[0].grades.append(GradeRecord(name="fn", score=1.0, passed=True, grader=None))
    records[1].grades.append(GradeRecord(name="fn", score=1.0, passed=True, grader=None))
    records[1].grades.append(GradeRecord(name="only_some", score=1, passed=True, grader=exported))
    grader, notes = reward_grader(records)
    assert grader["name"] == "check"
    assert "'fn' is a Python function" in notes[0]
    assert "'only_some' graded 1 of 2 cases" in notes[1]
    with pytest.raises(TrainingDataError, match="only plain asserts"):
        reward_grader([CaseRecord(eval="e", nodeid="n", model="m", case_id="c", status="passed")])


def test_rft_combines_several_graders_into_one_multi_grader() -> None:
    a = graders.string_check(reference="x", name="exact").to_openai()
    b = graders.length(max_words=5, name="short words").to_openai()
    rec = record("c1", "x", grader=a)
    rec.grades.append(GradeRecord(name="short words", score=1, passed=True, grader=b))
    grader, _ = reward_grader([rec])
    assert grader["type"] == "multi"
    assert grader["calculate_output"] == "(check + short_words) / 2"  # named by their grades
    assert from_openai(grader).grade("x", {}).score == 1.0


def test_sft_answers_from_a_field_trains_every_case_on_its_label() -> None:
    """Supervised fine-tuning on labelled data: the label is the answer whatever the model
    said, failing cases included; held-out cases still never train."""
    records = [
        record(f"c{i}", "I am not sure", passed=False, item={"id": f"c{i}", "label": f"L{i % 3}"})
        for i in range(40)
    ]
    records.append(record("c99", "x", item={"id": "c99"}))  # a row without the field
    data = sft(records, Selection(holdout_fraction=0.25, answers_from="label"))
    held = {f"c{i}" for i in range(40) if in_holdout(f"c{i}", 0.25)}
    assert held
    assert set(data.case_ids) == {f"c{i}" for i in range(40)} - held
    by_case = dict(zip(data.case_ids, data.examples, strict=True))
    assert by_case["c4"]["messages"][-1] == {"role": "assistant", "content": "L1"}
    assert by_case["c4"]["messages"][:-1] == records[4].input
    assert data.skipped == {"held out": len(held), "no 'label' field in the case": 1}
    assert "the dataset field 'label'" in data.notes[0]


def test_sft_answers_from_a_field_no_case_has_is_one_clear_error() -> None:
    with pytest.raises(TrainingDataError, match="no case of teacher has a 'lable' field"):
        sft([record("c1", "billing")], Selection(answers_from="lable"))


def test_sft_answers_from_a_structured_field_is_its_json() -> None:
    item = {"id": "c1", "want": {"team": "billing", "urgent": True}}
    data = sft(
        [record("c1", "?", passed=False, item=item)],
        Selection(holdout_fraction=0.0, answers_from="want"),
    )
    assert data.examples[0]["messages"][-1]["content"] == '{"team": "billing", "urgent": true}'
