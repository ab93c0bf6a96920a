"""LLM judges: structured outputs, fallbacks, unreadable replies, labels, replays."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders import GraderError
from pytest_modelopt.graders.context import GradingContext, grading
from pytest_modelopt.model.client import ModelClient
from tests.support import openapi

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_modelopt.model.types import Completion
    from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def judging(server: FakeOpenAI) -> GradingContext:
    calls: list[Completion] = []
    ctx = GradingContext(
        client=ModelClient(base_url=server.base_url, timeout=5, max_retries=0),
        judge_model="gpt-4.1-mini",
        on_judge_call=calls.append,
    )
    ctx.calls = calls  # type: ignore[attr-defined]
    return ctx


def test_score_model_uses_structured_outputs(server: FakeOpenAI, judging: GradingContext) -> None:
    server.reply(json.dumps({"steps": [{"description": "d", "conclusion": "polite"}], "result": 8}))
    grader = graders.score_model(
        "Rate politeness 1-10: {{ sample.output_text }}", range=(1, 10), pass_threshold=7
    )
    with grading(judging):
        grade = grader.grade("Thank you!", {})
    assert (grade.passed, grade.sub_scores["raw"]) == (True, 8.0)
    assert grade.score == pytest.approx(7 / 9)
    assert grade.reason == "8 in [1, 10] >= 7: polite"
    (request,) = server.requests
    assert request.body["model"] == "gpt-4.1-mini"
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["messages"][-1]["content"] == "Rate politeness 1-10: Thank you!"
    if openapi.spec_available():
        openapi.validate_request(request.path, request.body)
    assert len(judging.calls) == 1  # type: ignore[attr-defined]


def test_judge_uses_json_object_schema_where_json_schema_is_refused_with_a_500(
    server: FakeOpenAI, judging: GradingContext
) -> None:
    server.response_formats = {"json_object"}  # what llama.cpp's server accepts
    server.response_format_status = 500
    server.reply('{"explanation": "fine", "label": "yes"}')
    with grading(judging):
        grade = graders.label_model(
            "ok? {{ sample.output_text }}", labels=["yes", "no"], passing_labels=["yes"]
        ).grade("ok", {})
    assert grade.passed
    formats = [r.body.get("response_format") for r in server.requests]
    assert formats[0]["type"] == "json_schema"
    assert formats[1]["type"] == "json_object"
    assert formats[1]["schema"]["properties"]["label"]["enum"] == ["yes", "no"]
    assert len(formats) == 2  # the refused format was probed once, not retried


def test_judge_falls_back_to_a_plain_request_and_parses_text(
    server: FakeOpenAI, judging: GradingContext
) -> None:
    server.response_formats = set()
    server.reply("Score: 3. The reply is curt.")
    with grading(judging):
        grade = graders.score_model("Rate {{ sample.output_text }}", range=(1, 5)).grade("ok", {})
        graders.score_model("Again {{ sample.output_text }}", range=(1, 5)).grade("ok", {})
    assert (grade.sub_scores["raw"], grade.passed) == (3.0, True)
    formats = [r.body.get("response_format", {}).get("type") for r in server.requests]
    # json_schema refused -> json_object + schema refused too -> plain, remembered for model
    assert formats == ["json_schema", "json_object", None, None]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I cannot decide.", "gave no score; its reply: 'I cannot decide.'"),
        ('{"steps": [], "result": 12}', "scored 12, outside the range [1, 10]"),
    ],
)
def test_unreadable_or_out_of_range_judge_reply_is_an_error(
    server: FakeOpenAI, judging: GradingContext, reply: str, message: str
) -> None:
    server.reply(reply)
    with grading(judging), pytest.raises(GraderError) as info:
        graders.score_model("Rate {{ sample.output_text }}", range=(1, 10)).grade("ok", {})
    assert message in str(info.value)


def test_label_model_and_refusal_preset(server: FakeOpenAI, judging: GradingContext) -> None:
    server.reply('{"explanation": "says it cannot", "label": "refused"}', contains="refuse")
    server.reply("Polite.", contains="Tone")
    with grading(judging):
        refusal = graders.refusal().grade("I can't help with that.", {})
        tone = graders.label_model(
            "Tone of: {{ sample.output_text }}",
            labels=["polite", "rude"],
            passing_labels=["polite"],
        ).grade("Thanks!", {})
    assert (refusal.passed, refusal.reason) == (False, "label 'refused': says it cannot")
    assert (tone.passed, tone.reason) == (True, "label 'polite'")


def test_judge_without_a_model_says_how_to_set_one() -> None:
    with grading(GradingContext()), pytest.raises(GraderError, match="set judge_model"):
        graders.score_model("x").grade("y", {})


def test_judge_replay_skips_formats_the_server_refused_when_recording(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    from pytest_modelopt.model.cache import ResponseCache

    server.response_formats = {"json_object"}
    server.response_format_status = 500
    server.reply('{"explanation": "", "label": "yes"}')
    grader = graders.label_model(
        "ok? {{ sample.output_text }}", labels=["yes", "no"], passing_labels=["yes"]
    )

    def judge(mode: str) -> bool:
        client = ModelClient(
            base_url=server.base_url, timeout=5, max_retries=0, cache=ResponseCache(tmp_path, mode)
        )  # type: ignore[arg-type]
        with grading(GradingContext(client=client, judge_model="j")):
            return grader.grade("ok", {}).passed

    assert judge("new")
    server.reset()
    assert judge("none")
    assert server.requests == []
