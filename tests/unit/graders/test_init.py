"""The grader constructors (``pytest_modelopt.graders``): a bad definition is one clear
GraderError.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders import GraderError


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
