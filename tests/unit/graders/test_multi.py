"""``multi``: graders combined by a formula, and its documented dict form."""

from __future__ import annotations

from pytest_modelopt import graders
from tests.support import openapi


def test_multi_combines_with_the_formula() -> None:
    multi = graders.multi(
        {
            "name": graders.string_check("{{ item.name }}", input="{{ sample.output_json.name }}"),
            "email": graders.string_check(
                "{{ item.email }}", input="{{ sample.output_json.email }}"
            ),
        },
        "(name + email) / 2",
    )
    item = {"name": "Ada", "email": "ada@example.com"}
    grade = multi.grade('{"name": "Ada", "email": "ada@x.org"}', item)
    assert (grade.score, grade.passed) == (0.5, False)
    assert grade.sub_scores == {"name": 1.0, "email": 0.0}
    lenient = multi.model_copy(update={"pass_threshold": 0.5})
    assert lenient.grade('{"name": "Ada", "email": "ada@x.org"}', item).passed


def test_multi_round_trips_in_the_documented_dict_form() -> None:
    multi = graders.multi(
        {"a": graders.string_check("x"), "b": graders.regex("y")}, "max(a, b ^ 2)", name="m"
    )
    data = multi.to_openai()
    assert set(data["graders"]) == {"a", "b"}
    assert graders.from_openai(data) == multi
    if openapi.spec_available():
        # The spec types `graders` as one grader; OpenAI's docs (and API) take a dict.
        openapi.validate_response("GraderStringCheck", data["graders"]["a"])
        openapi.validate_response("GraderPython", data["graders"]["b"])
