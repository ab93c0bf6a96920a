"""``text_similarity``'s cosine metric: embeddings through the run's client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders.context import GradingContext, grading
from pytest_modelopt.model.client import ModelClient

if TYPE_CHECKING:
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
