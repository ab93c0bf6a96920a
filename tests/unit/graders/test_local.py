"""Local graders (regex, contains, numeric, length, JSON) and their export to OpenAI."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from pytest_modelopt import graders
from pytest_modelopt.graders import GraderError
from pytest_modelopt.model.types import Completion, Usage


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


def test_exported_local_grader_runs_as_openai_would() -> None:
    from pytest_modelopt.graders.engines.python_source import run_grade

    source = graders.contains_all(["refund", "{{ item.order }}"]).to_openai()["source"]
    sample = {"output_text": "Your refund for order 48213 is on its way.", "output_json": None}
    assert run_grade(source, sample, {"order": "48213"}) == 1.0
    assert run_grade(source, sample, {"order": "99999"}) == 0.5
