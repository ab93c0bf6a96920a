"""The labels format: one clear error per bad line, newer formats refused, round trips,
merging; and the grader identity labels bind to."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders.context import GradingContext, grading
from pytest_modelopt.records.labels import (
    Label,
    LabelsError,
    append_labels,
    find_label_files,
    merge_labels,
    read_labels,
    write_labels,
)

if TYPE_CHECKING:
    from pathlib import Path

GOOD: dict[str, Any] = {
    "schema_version": 1,
    "eval": "test_triage::test_reply",
    "case_id": "c1",
    "model": "gpt-4.1-mini",
    "sample": 0,
    "grader": "tone",
    "grader_identity": "0123456789abcdef",
    "verdict": "pass",
    "note": "",
    "reviewer": "ann",
    "labelled_at": "2026-12-07T17:05:00Z",
    "run_id": "20261207-170000-abcdef",
    "output_sha256": "a" * 64,
}


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_the_agreed_line_reads_and_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [GOOD, "", {**GOOD, "grader": None, "verdict": "fail"}])
    first, second = read_labels(path)
    assert first.model_dump() == GOOD
    assert (second.grader, second.verdict) == (None, "fail")
    copy = tmp_path / "b.jsonl"
    write_labels(copy, [first])
    append_labels(copy, [second])
    assert read_labels(copy) == [first, second]


def test_every_bad_line_is_one_error_with_file_line_field_and_what_to_do(tmp_path: Path) -> None:
    rows = [
        GOOD,
        "{not json",
        {k: v for k, v in GOOD.items() if k != "verdict"},
        {**GOOD, "verdict": "maybe"},
        {**GOOD, "colour": "red"},
        {**GOOD, "labelled_at": "2026-12-07T17:05:00"},
        {**GOOD, "output_sha256": "xyz"},
        [1, 2],
    ]
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LabelsError) as caught:
        read_labels(path)
    problems = caught.value.problems
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:{n}" for n in range(2, 9)]
    assert "not JSON" in problems[0]
    assert f"{path}:3: verdict: Field required: fix it" in problems[1]
    assert f"{path}:4: verdict:" in problems[2]
    assert f"{path}:5: colour: Extra inputs are not permitted: remove it" in problems[3]
    assert "with a time zone" in problems[4]
    assert "64 lowercase hex digits" in problems[5]
    assert "must be a JSON object" in problems[6]


def test_a_newer_format_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "new.jsonl", [GOOD, {**GOOD, "schema_version": 2, "new": 1}])
    with pytest.raises(LabelsError) as caught:
        read_labels(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:2: written in labels format 2 by a newer pytest-modelopt")
    assert "pip install -U pytest-modelopt" in problem


def test_label_files_are_found_by_glob_from_the_root(tmp_path: Path) -> None:
    (tmp_path / "evals" / "labels").mkdir(parents=True)
    for name in ("b.jsonl", "a.jsonl"):
        _write(tmp_path / "evals" / "labels" / name, [GOOD])
    found = find_label_files(["evals/labels/*.jsonl", "evals/labels/a.jsonl"], tmp_path)
    assert [p.name for p in found] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(LabelsError, match="does not exist"):
        find_label_files(["evals/missing.jsonl"], tmp_path)


def _at(verdict: str, reviewer: str, when: str, **extra: Any) -> Label:
    return Label.model_validate(
        {**GOOD, "verdict": verdict, "reviewer": reviewer, "labelled_at": when, **extra}
    )


def test_merge_collapses_agreement_and_resolves_conflicts_only_when_told() -> None:
    early = _at("pass", "ann", "2026-12-07T17:00:00Z")
    again = _at("pass", "bob", "2026-12-07T17:30:00+00:00")
    late = _at("fail", "cy", "2026-12-07T18:00:00Z")
    other_output = _at("fail", "cy", "2026-12-07T18:00:00Z", output_sha256="b" * 64)
    merged, conflicts, collapsed = merge_labels([early, again, other_output])
    # labels of another output of the case do not conflict: they label another answer
    assert (merged, conflicts, collapsed) == ([again, other_output], [], 1)
    merged, conflicts, _ = merge_labels([early, late, again])
    assert merged == []
    assert [c.labels for c in conflicts] == [[early, again, late]]
    assert merge_labels([early, late, again], "latest")[0] == [late]
    assert merge_labels([early, late, again], "pass")[0] == [again]
    assert merge_labels([early, late, again], "fail")[0] == [late]


def test_identity_is_what_makes_a_judge_judge_not_its_name() -> None:
    judge = graders.label_model("Good? {{ sample.output_text }}", labels=["y", "n"],
                                passing_labels=["y"], model="judge-1")  # fmt: skip
    assert len(judge.identity()) == 16
    assert judge.model_copy(update={"name": "renamed"}).identity() == judge.identity()
    for change in (
        {"model": "judge-2"},
        {"input": [{"role": "user", "content": "Good?? {{ sample.output_text }}"}]},
        {"passing_labels": ["n"]},
    ):
        assert judge.model_copy(update=change).identity() != judge.identity()
    unnamed = judge.model_copy(update={"model": None})
    with grading(GradingContext(judge_model="judge-1")):
        assert unnamed.identity() == judge.identity()  # the judge model that judges
    scored = graders.score_model("Rate {{ sample.output_text }}", model="judge-1")
    assert scored.identity() != scored.model_copy(update={"pass_threshold": 0.9}).identity()


def test_every_grader_has_an_identity() -> None:
    def exact(sample: Any, item: Any) -> bool:
        return True

    assert graders.function(exact).identity() != graders.function(lambda s, i: True).identity()
    assert graders.string_check("x").identity() != graders.string_check("y").identity()
