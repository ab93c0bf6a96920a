"""Graders inside pytest: every type passes, fails and errors per case; judges cost apart."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


# Each grader is run on three cases whose echoed output passes, fails, and errors (a field
# the grader's template needs is missing, a judge reply that cannot be read, a raising
# python grader).
GRADERS = {
    "string_check": 'graders.string_check(reference="{{ item.want }}")',
    "text_similarity": (
        'graders.text_similarity(reference="{{ item.want }}", evaluation_metric="fuzzy_match",'
        " pass_threshold=0.9)"
    ),
    "score_model": 'graders.score_model("Rate {{ sample.output_text }} vs {{ item.want }}",'
    " range=(1, 10), pass_threshold=7)",
    "label_model": 'graders.label_model("Same as {{ item.want }}? {{ sample.output_text }}",'
    ' labels=["same", "different"], passing_labels=["same"])',
    "python": (
        'graders.python("def grade(sample, item):\\n'
        "    return 1.0 if sample['output_text'] == item['want'] else 0.0\\n\")"
    ),
    "multi": (
        'graders.multi({"a": graders.string_check("{{ item.want }}"),'
        ' "b": graders.contains_any(["{{ item.want }}"])}, "min(a, b)", pass_threshold=1)'
    ),
    "regex": 'graders.regex("^42 short$", input="{{ sample.output_text }} {{ item.txt }}")',
    "contains_all": 'graders.contains_all(["{{ item.want }}"])',
    "contains_any": 'graders.contains_any(["{{ item.want }}", "zzz"])',
    "json_schema": (
        'graders.json_schema({"type": "object", "required": ["w"]}, input="{{ item.want_json }}")'
    ),
    "json_match": 'graders.json_match("{{ item.want_obj }}", input="{{ item.got_obj }}")',
    "numeric": 'graders.numeric("{{ item.want }}")',
    "length": 'graders.length(max_words=1, input="{{ item.txt }}")',
}


ROWS = [
    {
        "id": "pass",
        "q": "42",
        "want": "42",
        "want_json": {"w": 1},
        "want_obj": {"a": 1},
        "got_obj": {"a": 1},
        "txt": "short",
    },
    {
        "id": "fail",
        "q": "41",
        "want": "42",
        "want_json": {"x": 1},
        "want_obj": {"a": 1},
        "got_obj": {"a": 2},
        "txt": "far too long",
    },
    {"id": "error", "q": "40"},
]


@pytest.mark.parametrize("kind", sorted(GRADERS))
def test_each_grader_passes_fails_and_errors(
    project: Project, server: FakeOpenAI, kind: str, mode: list[str]
) -> None:
    project.config(models=["gpt-4.1-mini"], judge_model="judge-1")
    project.dataset("d.jsonl", ROWS)
    project.file("p.j2", "{{ q }}")
    server.reply('{"steps": [], "result": 9}', model="judge-1", contains="Rate 42")
    server.reply('{"steps": [], "result": 2}', model="judge-1", contains="Rate 41")
    server.reply("I refuse to say.", model="judge-1", contains="Rate 40")
    server.reply('{"explanation": "", "label": "same"}', model="judge-1", contains="? 42")
    server.reply('{"explanation": "", "label": "different"}', model="judge-1", contains="? 41")
    server.reply("maybe", model="judge-1", contains="? 40")
    if kind in ("score_model", "label_model"):
        # judges see the case through their prompt only, so the error row gets a bad reply
        grader = GRADERS[kind].replace("{{ item.want }}", "42")
    elif kind == "python":
        grader = GRADERS[kind]  # item['want'] raises KeyError on the error row
    else:
        grader = GRADERS[kind]
    project.test(
        f"""
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.3)
        def test_g(completion, grade):
            grade(completion, {grader})
        """
    )
    result = project.run(*mode)
    statuses = {c["case_id"]: c["status"] for c in project.cases()}
    assert statuses == {"pass": "passed", "fail": "failed", "error": "error"}, result.stdout.str()
    (error,) = [c for c in project.cases() if c["status"] == "error"]
    assert error["error"]["kind"] == "grader"
    assert result.ret == 1  # the errored case is a pytest error


def test_declared_and_configured_graders(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]

        [tool.modelopt.graders.has_number]
        type = "string_check"
        input = "{{ sample.output_text }}"
        reference = "{{ item.want }}"
        operation = "like"
        """,
    )
    project.dataset("d.jsonl", ROWS[:2])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.5,
                          graders=["has_number", graders.length(max_words=3)])
        def test_declared():
            pass

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.5)
        def test_named(completion, grade):
            grade(completion, "has_number", name="number")
        """
    )
    result = project.run(*mode)
    assert result.ret == 0
    cases = {(c["eval"], c["case_id"]): c for c in project.cases()}
    declared = cases[("test_suite::test_declared", "pass")]["grades"]
    assert [(g["name"], g["passed"]) for g in declared] == [("has_number", True), ("length", True)]
    assert not cases[("test_suite::test_declared", "fail")]["grades"][0]["passed"]
    assert cases[("test_suite::test_named", "pass")]["grades"][0]["name"] == "number"
    rows = {r["eval"]: r for r in project.summary()["evals"]}
    assert [
        (g["name"], g["passed"], g["graded"]) for g in rows["test_suite::test_declared"]["graders"]
    ] == [
        ("has_number", 1, 2),
        ("length", 2, 2),
    ]
    result.stdout.fnmatch_lines(
        [
            "graders:",
            "  test_suite::test_declared [[]gpt-4.1-mini[]]: "
            "has_number 50% (1/2), length 100% (2/2)",
        ]
    )


def test_judge_cost_is_recorded_apart(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.config(models=["gpt-4.1-mini"], judge_model="gpt-4.1")
    project.dataset("d.jsonl", ROWS[:1])
    project.file("p.j2", "{{ q }}")
    server.reply(json.dumps({"steps": [], "result": 1}), model="gpt-4.1")
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_j(completion, grade):
            grade(completion, graders.score_model("Is {{ sample.output_text }} right?"))
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1)
    (case,) = project.cases()
    assert case["calls"] == 1
    assert case["judge_calls"] == 1
    assert case["judge_cost"] > 0
    assert case["cost"] < case["judge_cost"]  # gpt-4.1 judging costs more than the mini answer
    (row,) = project.summary()["evals"]
    assert row["judge_cost"] == case["judge_cost"]
    result.stdout.fnmatch_lines(["eval*cost*judge cost*verdict"])


def test_unknown_configured_grader_type_stops_with_exit_4(
    project: Project, mode: list[str]
) -> None:
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["m"]

        [tool.modelopt.graders.oops]
        type = "strng_check"
        """,
    )
    project.test("def test_x():\n    pass\n")
    result = project.run(*mode)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*graders: oops: unknown grader type 'strng_check' (known: *"])


def test_bad_declared_grader_is_a_collection_error(project: Project, mode: list[str]) -> None:
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", graders=["nope"])
        def test_x():
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret == (1 if "-n" in mode else 2)  # xdist: a collection error fails
    result.stdout.fnmatch_lines(["*no grader named 'nope' in [[]tool.modelopt.graders[]]*"])
