"""Graders: semantics, errors, OpenAI JSON round-trips checked against the published spec."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from pytest_modelopt import graders
from pytest_modelopt.graders import Grader, GraderError
from pytest_modelopt.graders.context import GradingContext, grading
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import Completion, Usage
from tests.support import openapi

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI

# -- deterministic graders --------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "output", "reference", "passed"),
    [
        ("eq", "billing", "billing", True),
        ("eq", "Billing", "billing", False),
        ("ne", "bug", "billing", True),
        ("like", "it is billing.", "billing", True),
        ("like", "it is Billing.", "billing", False),
        ("ilike", "it is Billing.", "billing", True),
        ("ilike", "it is a bug.", "billing", False),
    ],
)
def test_string_check_semantics(operation: str, output: str, reference: str, passed: bool) -> None:
    grade = graders.string_check(reference=reference, operation=operation).grade(output, {})
    assert (grade.passed, grade.score) == (passed, float(passed))


def test_templates_use_openai_namespaces() -> None:
    grader = graders.string_check(reference="{{ item.label }}", input="{{ sample.output_json.c }}")
    assert grader.grade('{"c": "bug"}', {"label": "bug"}).passed
    with pytest.raises(GraderError, match="'dict object' has no attribute 'label'"):
        grader.grade('{"c": "bug"}', {"other": 1})


def test_regex_contains_numeric_length() -> None:
    assert graders.regex(r"\bA-\d{3}\b").grade("order A-123 shipped", {}).passed
    assert not graders.regex(r"\d+", mode="fullmatch").grade("12 apples", {}).passed
    assert graders.regex("ORDER", flags="i").grade("order", {}).passed
    grade = graders.contains_all(["refund", "order"]).grade("We will refund you.", {})
    assert (grade.passed, grade.score, grade.reason) == (False, 0.5, "missing ['order']")
    assert graders.contains_any(["yes", "sure"]).grade("Sure thing", {}).passed
    assert graders.numeric(42, abs_tol=0.5).grade("The answer is 42.3", {}).passed
    assert not graders.numeric("{{ item.n }}").grade("about 40", {"n": 42}).passed
    assert graders.numeric(1200).grade("1,200", {}).passed
    assert graders.length(max_words=3).grade("one two three", {}).passed
    grade = graders.length(max_words=2, max_chars=5).grade("one two three", {})
    assert grade.reason == "3 words > 2; 13 chars > 5"
    completion = Completion(text="x", model="m", api="chat", usage=Usage(completion_tokens=9))
    assert not graders.length(max_tokens=8).grade(completion, {}).passed
    with pytest.raises(GraderError, match="tokens are only known when grading a Completion"):
        graders.length(max_tokens=8).grade("plain text", {})


class Ticket(BaseModel):
    category: str
    urgent: bool


def test_json_schema_and_json_match() -> None:
    schema = graders.json_schema(Ticket)
    assert schema.grade('{"category": "bug", "urgent": true}', {}).passed
    grade = schema.grade('{"category": "bug"}', {})
    assert (grade.passed, grade.reason) == (False, "(root): 'urgent' is a required property")
    assert not schema.grade("not json", {}).passed
    match = graders.json_match({"category": "bug", "score": 0.8}, tolerance={"score": 0.1})
    assert match.grade('{"category": "bug", "score": 0.75}', {}).passed
    grade = match.grade('{"category": "billing", "score": 0.75}', {})
    assert (grade.passed, grade.score) == (False, 0.5)
    templated = graders.json_match("{{ item.expected }}", fields=["category"])
    assert templated.grade('{"category": "bug", "x": 1}', {"expected": {"category": "bug"}}).passed


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: graders.regex("(unclosed"), "regex /(unclosed/ does not compile"),
        (lambda: graders.regex("x", flags="q"), "flags may be i, m, s and x"),
        (
            lambda: graders.text_similarity("a", evaluation_metric="bleu", pass_threshold=1.5),
            "pass_threshold 1.5 is outside the metric's range [0, 1]",
        ),
        (lambda: graders.text_similarity("a", evaluation_metric="wer"), "evaluation_metric"),
        (
            lambda: graders.score_model("x", range=(1, 10), pass_threshold=11),
            "pass_threshold 11.0 is outside the range [1, 10]",
        ),
        (
            lambda: graders.label_model("x", labels=["a", "b"], passing_labels=["c"]),
            "passing_labels ['c'] are not among labels ['a', 'b']",
        ),
        (
            lambda: graders.multi({"a": graders.string_check("x")}, "a + b"),
            "unknown name 'b'",
        ),
        (
            lambda: graders.multi({"a": graders.string_check("x")}, "a.__class__"),
            "attribute access is not allowed",
        ),
        (lambda: graders.length(), "give at least one of min/max words, chars or tokens"),
        (lambda: graders.json_schema({"type": "nope"}), "not a valid JSON Schema"),
        (lambda: graders.from_openai({"type": "strng_check"}), "unknown grader type 'strng_check'"),
        (lambda: graders.python("def grade(sample):\n    return 1"), "two"),
    ],
)
def test_bad_definitions_raise_one_clear_error(build: Any, message: str) -> None:
    with pytest.raises(GraderError) as info:
        build()
    assert message in str(info.value)


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


# -- OpenAI JSON ------------------------------------------------------------------------

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


def test_exported_local_grader_runs_as_openai_would() -> None:
    from pytest_modelopt.graders.engines.python_source import run_grade

    source = graders.contains_all(["refund", "{{ item.order }}"]).to_openai()["source"]
    sample = {"output_text": "Your refund for order 48213 is on its way.", "output_json": None}
    assert run_grade(source, sample, {"order": "48213"}) == 1.0
    assert run_grade(source, sample, {"order": "99999"}) == 0.5


def test_python_grader_runs_in_a_subprocess() -> None:
    grader = graders.python(PYTHON_SOURCE)
    assert grader.grade("bug", {"label": "bug"}).passed
    assert not grader.grade("bug", {"label": "billing"}).passed
    broken = graders.python("def grade(sample, item):\n    return 1 / 0\n", name="broken")
    with pytest.raises(GraderError, match="ZeroDivisionError"):
        broken.grade("x", {})


# -- judges -----------------------------------------------------------------------------


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


def test_cosine_similarity_uses_the_embeddings_endpoint(
    server: FakeOpenAI, judging: GradingContext
) -> None:
    grader = graders.text_similarity(
        "the parcel never arrived", evaluation_metric="cosine", pass_threshold=0.99
    )
    with grading(judging):
        same = grader.grade("the parcel never arrived", {})
        other = grader.grade("my invoice is wrong", {})
    assert same.score == pytest.approx(1.0)
    assert same.passed
    assert other.score < 0.5
    assert server.requests[0].path == "/v1/embeddings"
    assert server.requests[0].body["model"] == "text-embedding-3-large"


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
