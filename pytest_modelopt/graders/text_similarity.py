"""``text_similarity``: OpenAI's similarity metrics, computed locally.

The ten text metrics come from maintained libraries (see ``similarity.py``); ``cosine``
embeds both texts through the run's client, so it works against any OpenAI-compatible
server with an embeddings endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from . import context
from .base import (
    DEFAULT_INPUT,
    Grade,
    Grader,
    GraderError,
    Template,
    render,
    sample_namespace,
)
from .engines.similarity import Metric, SimilarityError, cosine, similarity, wordnet_available

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-large"


class TextSimilarity(Grader):
    """Scores in [0, 1]; passes at ``pass_threshold``."""

    type: Literal["text_similarity"] = "text_similarity"
    input: Template = DEFAULT_INPUT
    reference: Template
    evaluation_metric: Metric
    pass_threshold: float

    @model_validator(mode="after")
    def _threshold_in_range(self) -> TextSimilarity:
        if not 0 <= self.pass_threshold <= 1:
            raise ValueError(
                f"pass_threshold {self.pass_threshold} is outside the metric's range [0, 1]"
            )
        return self

    def grade(self, sample: Any, item: Mapping[str, Any] | None = None) -> Grade:
        ns = sample_namespace(sample)
        item = dict(item or {})
        got = render(self.input, ns, item, grader=self.label)
        ref = render(self.reference, ns, item, grader=self.label)

        try:
            if self.evaluation_metric == "cosine":
                score = cosine(*_embed([got, ref]))
            else:
                score = similarity(self.evaluation_metric, got, ref)
        except SimilarityError as exc:
            raise GraderError(f"grader {self.label!r}: {exc}") from None
        passed = score >= self.pass_threshold
        note = ""
        if self.evaluation_metric == "meteor" and not wordnet_available():
            note = " (meteor without WordNet synonyms)"
        reason = (
            f"{self.evaluation_metric} {score:.3f} {'>=' if passed else '<'} "
            f"{self.pass_threshold:g}{note}"
        )
        return self._grade(score, passed, reason)


def _embed(texts: list[str]) -> list[list[float]]:
    ctx = context.current()
    client = ctx.get_client()
    model = ctx.embedding_model or DEFAULT_EMBEDDING_MODEL
    vectors, call = client.embed(model, texts, context=ctx.call_context("/embeddings", model))
    ctx.judged(call)
    if len(vectors) != len(texts):
        raise GraderError(f"the embeddings endpoint returned {len(vectors)} vectors for 2 texts")
    return vectors
