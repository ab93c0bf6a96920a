"""The local text_similarity metrics: each equals its library's own result with our settings."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from pytest_modelopt.graders.engines import similarity as sim

# (input, reference): the kinds of answer a grader sees.
PAIRS = {
    "identical": ("The cat sat on the mat.", "The cat sat on the mat."),
    "disjoint": ("zebra", "cloud"),  # no shared word, nor even a shared character
    "paraphrase": ("The car is very fast.", "The automobile is really quick."),
    "reordered": ("mat the on sat cat the", "the cat sat on the mat"),
    "partial": ("The cat sat on the rug.", "The cat sat on the mat."),
    "empty_input": ("", "The cat sat on the mat."),
}


ROUGE_KEYS = {f"rouge_{n}": f"rouge{n}" for n in range(1, 6)} | {"rouge_l": "rougeL"}


@pytest.fixture
def libs() -> None:
    for name in ("rapidfuzz", "sacrebleu", "nltk", "rouge_score"):
        pytest.importorskip(name)


def _tokens(text: str) -> list[str]:
    # Our documented tokenizer, restated here so a change to it fails these tests.
    return re.findall(r"\w+(?:['’]\w+)*|[^\w\s]", text.lower())


class _NoSynonyms:
    def synsets(self, *args: object, **kwargs: object) -> list[object]:
        return []


def _direct(metric: str, input: str, reference: str) -> float:
    """The library's own answer with the settings similarity.py documents."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.ratio(input, reference) / 100
    if metric == "bleu":
        import sacrebleu

        return min(1.0, sacrebleu.sentence_bleu(input, [reference]).score / 100)
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([_tokens(reference)], _tokens(input)))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        wordnet = sim._get_wordnet() or _NoSynonyms()
        return float(meteor_score([_tokens(reference)], _tokens(input), wordnet=wordnet))
    from rouge_score import rouge_scorer

    key = ROUGE_KEYS[metric]
    scorer = rouge_scorer.RougeScorer([key], use_stemmer=False)
    return float(scorer.score(reference, input)[key].fmeasure)


def test_metric_names() -> None:
    assert sim.METRICS == (
        "cosine",
        "fuzzy_match",
        "bleu",
        "gleu",
        "meteor",
        "rouge_1",
        "rouge_2",
        "rouge_3",
        "rouge_4",
        "rouge_5",
        "rouge_l",
    )
    assert sim.METRICS[1:] == sim.LOCAL_METRICS


@pytest.mark.usefixtures("libs")
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("metric", sim.LOCAL_METRICS)
def test_matches_the_library(metric: str, pair: str) -> None:
    input, reference = PAIRS[pair]
    score = sim.similarity(metric, input, reference)
    assert isinstance(score, float)
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(_direct(metric, input, reference), abs=1e-12)


def test_tokenizer_needs_no_punkt() -> None:
    assert sim._tokenize("Don't PANIC, it's 42!") == ["don't", "panic", ",", "it's", "42", "!"]
    assert sim._tokenize("") == []


@pytest.mark.usefixtures("libs")
@pytest.mark.parametrize("metric", sim.LOCAL_METRICS)
def test_identical_scores_one(metric: str) -> None:
    text = PAIRS["identical"][0]
    if metric == "meteor":
        # METEOR's fragmentation penalty never reaches 0: 7 tokens in one chunk.
        assert sim.similarity(metric, text, text) == pytest.approx(1 - 0.5 * (1 / 7) ** 3)
    else:
        assert sim.similarity(metric, text, text) == pytest.approx(1.0)


@pytest.mark.usefixtures("libs")
@pytest.mark.parametrize("metric", sim.LOCAL_METRICS)
@pytest.mark.parametrize("pair", ["disjoint", "empty_input"])
def test_nothing_shared_scores_zero(metric: str, pair: str) -> None:
    assert sim.similarity(metric, *PAIRS[pair]) == 0.0


@pytest.mark.usefixtures("libs")
def test_known_values_worked_by_hand() -> None:
    input, reference = PAIRS["partial"]  # one word of seven differs
    # BLEU (13a tokens, 7 each): n-gram precisions 6/7, 4/6, 3/5, 2/4, brevity penalty 1.
    assert sim.similarity("bleu", input, reference) == pytest.approx((6 / 35) ** 0.25)
    # GLEU: 15 of the 22 1- to 4-grams match, on either side.
    assert sim.similarity("gleu", input, reference) == pytest.approx(15 / 22)
    # rapidfuzz ratio: 20 common characters of 23 + 23.
    assert sim.similarity("fuzzy_match", input, reference) == pytest.approx(20 / 23)
    # ROUGE (6 tokens, punctuation dropped): 5/6 unigrams, 4/5 bigrams, 1/2 5-grams, LCS 5.
    assert sim.similarity("rouge_1", input, reference) == pytest.approx(5 / 6)
    assert sim.similarity("rouge_2", input, reference) == pytest.approx(4 / 5)
    assert sim.similarity("rouge_5", input, reference) == pytest.approx(1 / 2)
    assert sim.similarity("rouge_l", input, reference) == pytest.approx(5 / 6)
    # Reordering keeps every word but no bigram.
    shuffled, original = PAIRS["reordered"]
    assert sim.similarity("rouge_1", shuffled, original) == 1.0
    assert sim.similarity("rouge_2", shuffled, original) == 0.0


@pytest.mark.usefixtures("libs")
def test_case_handling_per_metric() -> None:
    # BLEU and fuzzy_match are case-sensitive (library defaults); the others lower-case.
    assert sim.similarity("bleu", "THE CAT", "the cat") == 0.0
    assert sim.similarity("fuzzy_match", "ABC", "abc") == 0.0
    for metric in ("gleu", "rouge_1", "rouge_l"):
        assert sim.similarity(metric, "THE CAT", "the cat") == 1.0


def test_cosine() -> None:
    assert sim.cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    assert sim.cosine([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert sim.cosine([1.0, 2.0], [-1.0, -2.0]) == pytest.approx(-1.0)
    assert sim.cosine([1, 2, 3], [4, 5, 6]) == pytest.approx(32 / math.sqrt(14 * 77))
    assert sim.cosine([0.0, 0.0], [1.0, 1.0]) == 0.0
    with pytest.raises(sim.SimilarityError, match="one length"):
        sim.cosine([1.0], [1.0, 2.0])


def test_cosine_metric_is_the_callers_job() -> None:
    with pytest.raises(sim.SimilarityError, match="embeddings"):
        sim.similarity("cosine", "a", "b")


def test_unknown_metric() -> None:
    with pytest.raises(sim.SimilarityError, match="unknown text_similarity metric 'rouge_9'"):
        sim.similarity("rouge_9", "a", "b")


def test_missing_library_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidfuzz", None)  # makes the import fail
    with pytest.raises(sim.SimilarityError, match=re.escape("pytest-modelopt[similarity]")):
        sim.similarity("fuzzy_match", "a", "b")


def test_optional_libraries_load_lazily() -> None:
    code = (
        "import sys, pytest_modelopt.graders.engines.similarity as s; "
        "print(sorted({'rapidfuzz', 'sacrebleu', 'nltk', 'rouge_score'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# car/auto and fast/quick share WordNet synsets. nltk looks synonyms up only after stemming
# both sides, so the pair must survive Porter stemming: "automobile" becomes "automobil" (no
# match), and "seated" becomes "seat", whose synonyms don't include "sat".
SYNONYMS = ("the car is fast", "the auto is quick")


@pytest.fixture
def no_wordnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "_wordnet_loaded", True)
    monkeypatch.setattr(sim, "_wordnet_reader", None)


@pytest.mark.usefixtures("libs", "no_wordnet")
def test_meteor_without_wordnet_uses_exact_and_stem_matches() -> None:
    assert not sim.wordnet_available()
    # "the" and "is" match: P = R = 1/2, two chunks, so the penalty halves it.
    assert sim.similarity("meteor", *SYNONYMS) == pytest.approx(0.25)
    # Stems still match: "running" ~ "runs".
    assert sim.similarity("meteor", "dogs running", "dog runs") == pytest.approx(
        1 - 0.5 * (1 / 2) ** 3
    )


@pytest.mark.usefixtures("libs")
def test_meteor_with_wordnet_matches_synonyms() -> None:
    if not sim.wordnet_available():
        pytest.skip("no local WordNet (nltk data or apt-get install wordnet-base)")
    # All four words align in one chunk.
    with_wordnet = sim.similarity("meteor", *SYNONYMS)
    assert with_wordnet == pytest.approx(1 - 0.5 * (1 / 4) ** 3)
    assert with_wordnet > 0.25


DEBIAN_WORDNET = os.environ.get("MODELOPT_WORDNET_DIR") or "/usr/share/wordnet"


@pytest.mark.usefixtures("libs")
@pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEBIAN_WORDNET, "data.noun")),
    reason="Debian's wordnet-base is not installed",
)
def test_debian_wordnet_directory_reads_with_nltk() -> None:
    # Debian ships no lexnames nor index.sense; the reader still works for synonyms.
    reader: Any = sim._load_wordnet_dir(DEBIAN_WORDNET)
    assert reader.get_version() == "3.0"
    lemmas = {name for s in reader.synsets("car") for name in s.lemma_names()}
    assert "auto" in lemmas
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    from nltk.translate.meteor_score import meteor_score

    hyp, ref = (_tokens(t) for t in SYNONYMS)
    assert meteor_score([ref], hyp, wordnet=reader) == pytest.approx(1 - 0.5 * (1 / 4) ** 3)


@pytest.mark.usefixtures("libs")
def test_wordnet_directory_without_database(tmp_path: Any) -> None:
    with pytest.raises(sim.SimilarityError, match=r"no WordNet database"):
        sim._load_wordnet_dir(str(tmp_path))
