"""What every grader shares: templates in OpenAI's namespaces, function graders, and
the round trip through OpenAI's JSON, checked against the published spec.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from pytest_modelopt import graders
from pytest_modelopt.graders import Grader, GraderError
from pytest_modelopt.model.types import Completion
from tests.support import openapi


def test_templates_use_openai_namespaces() -> None:
    grader = graders.string_check(reference="{{ item.label }}", input="{{ sample.output_json.c }}")
    assert grader.grade('{"c": "bug"}', {"label": "bug"}).passed
    with pytest.raises(GraderError, match="'dict object' has no attribute 'label'"):
        grader.grade('{"c": "bug"}', {"other": 1})


class Ticket(BaseModel):
    category: str
    urgent: bool


def test_function_graders_and_plain_callables() -> None:
    def exact(sample: Any, item: dict[str, Any]) -> bool:
        return bool(sample.text == item["label"])

    completion = Completion(text="bug", model="m", api="chat")
    assert graders.as_grader(exact).grade(completion, {"label": "bug"}).passed
    scored = graders.function(lambda s, i: 0.4, pass_threshold=0.5, name="partial")
    grade = scored.grade("x", {})
    assert (grade.name, grade.score, grade.passed) == ("partial", 0.4, False)
    with pytest.raises(GraderError, match="returned str"):
        graders.function(lambda s, i: "yes").grade("x", {})
    with pytest.raises(GraderError, match="no OpenAI JSON form"):
        graders.function(exact).to_openai()


PYTHON_SOURCE = (
    "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['label'] else 0.0\n"
)


OPENAI_GRADERS: list[tuple[str, Grader]] = [
    ("GraderStringCheck", graders.string_check("{{ item.label }}", name="exact")),
    (
        "EvalGraderTextSimilarity",
        graders.text_similarity("{{ item.label }}", evaluation_metric="bleu", pass_threshold=0.6),
    ),
    ("EvalGraderPython", graders.python(PYTHON_SOURCE, name="py", pass_threshold=1.0)),
    (
        "EvalGraderScoreModel",
        graders.score_model(
            [{"role": "user", "content": "Rate: {{ sample.output_text }}"}],
            model="gpt-4.1",
            range=(1, 10),
            pass_threshold=7,
            sampling_params={"temperature": 0, "max_completions_tokens": 64},
        ),
    ),
    (
        "GraderLabelModel",
        graders.label_model(
            "Tone of {{ sample.output_text }}",
            labels=["polite", "rude"],
            passing_labels=["polite"],
            model="gpt-4.1-mini",
            name="tone",
        ),
    ),
    ("GraderPython", graders.regex(r"\d{5}", name="has_order")),
    ("GraderPython", graders.json_schema(Ticket, name="ticket_json")),
]


@pytest.mark.parametrize(("schema", "grader"), OPENAI_GRADERS, ids=lambda v: getattr(v, "type", v))
def test_round_trip_through_openai_json(schema: str, grader: Grader) -> None:
    data = grader.to_openai()
    assert json.loads(json.dumps(data)) == data
    rebuilt = graders.from_openai(data)
    assert rebuilt == grader
    assert rebuilt.to_openai() == data
    if openapi.spec_available():
        openapi.validate_response(schema, data)
