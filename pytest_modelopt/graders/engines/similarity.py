"""The metrics behind OpenAI's ``text_similarity`` grader, computed locally.

OpenAI's graders guide names the libraries (rapidfuzz for ``fuzzy_match``, Google BLEU for
``gleu``, ROUGE for ``rouge_*``, an embeddings model for ``cosine``) but not their settings,
and its hosted implementation is not public. So each metric below uses the maintained
library's own standard, documented definition with its defaults, and says which; scores are
floats in [0, 1] (libraries that report 0-100 are divided by 100).

The libraries are optional (``pip install 'pytest-modelopt[similarity]'``) and imported
lazily, so importing this module costs nothing. Nothing is downloaded at run time: no
tokenizer needs nltk's ``punkt``, and METEOR's WordNet comes from local files or is left out
(see :func:`wordnet_available`).
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
import warnings
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from collections.abc import Sequence

Metric = Literal[
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
]
METRICS: tuple[str, ...] = get_args(Metric)
LOCAL_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "cosine")

# Where Debian's ``wordnet-base`` puts the WordNet 3.0 database; the variable overrides it.
_DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
_WORDNET_DIR_ENV = "MODELOPT_WORDNET_DIR"

_INSTALL_HINT = "pip install 'pytest-modelopt[similarity]'"


class SimilarityError(Exception):
    """A metric that can't be computed here: unknown name, ``cosine``, or a missing library."""


def similarity(metric: str, input: str, reference: str) -> float:
    """Score ``input`` against ``reference`` with one of :data:`LOCAL_METRICS`, in [0, 1].

    ``cosine`` needs embeddings from a model, so the caller computes it (see :func:`cosine`).
    """
    if metric == "cosine":
        raise SimilarityError(
            "cosine needs embeddings: embed both texts and call cosine(a, b) on the vectors"
        )
    if metric not in LOCAL_METRICS:
        raise SimilarityError(
            f"unknown text_similarity metric {metric!r}; expected one of {', '.join(METRICS)}"
        )
    if metric == "fuzzy_match":
        score = _fuzzy_match(input, reference)
    elif metric == "bleu":
        score = _bleu(input, reference)
    elif metric == "gleu":
        score = _gleu(input, reference)
    elif metric == "meteor":
        score = _meteor(input, reference)
    else:
        score = _rouge(metric, input, reference)
    return _clamp(score)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors; 0.0 if either is all zeros (no direction to compare).

    Pure Python so the ``cosine`` metric needs no numpy: the caller embeds both texts (OpenAI
    uses an embeddings model) and passes the vectors here.
    """
    if len(a) != len(b):
        raise SimilarityError(f"cosine needs vectors of one length, got {len(a)} and {len(b)}")
    norm_a = math.sqrt(math.fsum(x * x for x in a))
    norm_b = math.sqrt(math.fsum(y * y for y in b))
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    value = math.fsum(x * y for x, y in zip(a, b, strict=True)) / (norm_a * norm_b)
    return max(-1.0, min(1.0, value))


def _tokenize(text: str) -> list[str]:
    """Lower-case, then split into words (keeping ``don't`` whole) and single punctuation marks.

    A deterministic stand-in for ``nltk.word_tokenize``, which needs the downloaded ``punkt``
    model; used for GLEU and METEOR, whose nltk functions take pre-tokenised text. (BLEU and
    ROUGE tokenise themselves.)
    """
    return _TOKEN_RE.findall(text.lower())


_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def _clamp(score: float) -> float:
    # sacrebleu can report 100.00000000000004 for a perfect match.
    return max(0.0, min(1.0, float(score)))


def _missing(library: str, exc: ImportError) -> SimilarityError:
    return SimilarityError(f"the {library} library is not installed: {_INSTALL_HINT}  ({exc})")


def _fuzzy_match(input: str, reference: str) -> float:
    """rapidfuzz ``fuzz.ratio`` on the raw strings, / 100.

    OpenAI only says "using rapidfuzz"; ``ratio`` (normalised Indel similarity, symmetric,
    case-sensitive, no preprocessing) is its plain, standard scorer. ``WRatio`` /
    ``token_set_ratio`` add heuristics (partial and order-free matching) that OpenAI doesn't
    document.
    """
    try:
        from rapidfuzz import fuzz
    except ImportError as exc:
        raise _missing("rapidfuzz", exc) from exc
    return float(fuzz.ratio(input, reference)) / 100.0


def _bleu(input: str, reference: str) -> float:
    """sacreBLEU ``sentence_bleu(input, [reference])`` with its defaults, / 100.

    That is the standard reportable BLEU (signature ``case:mixed|eff:yes|tok:13a|smooth:exp``):
    4-gram, its own 13a tokeniser, case-sensitive, exponential smoothing and effective order
    so short sentences don't collapse to 0.
    """
    try:
        import sacrebleu
    except ImportError as exc:
        raise _missing("sacrebleu", exc) from exc
    return float(sacrebleu.sentence_bleu(input, [reference]).score) / 100.0


def _gleu(input: str, reference: str) -> float:
    """Google BLEU: nltk ``sentence_gleu([ref], hyp)`` (1- to 4-grams) on :func:`_tokenize`.

    nltk's is the reference implementation of Google BLEU (Wu et al., 2016; Hugging Face's
    ``google_bleu`` wraps it); for one pair ``sentence_gleu`` equals ``corpus_gleu``.
    """
    try:
        from nltk.translate.gleu_score import sentence_gleu  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("nltk", exc) from exc
    return float(sentence_gleu([_tokenize(reference)], _tokenize(input)))


def _meteor(input: str, reference: str) -> float:
    """nltk ``meteor_score([ref], hyp)`` on :func:`_tokenize`, default alpha=0.9, beta=3, gamma=0.5.

    Matches exact words, then Porter stems, then WordNet synonyms when WordNet is available
    locally (see :func:`wordnet_available`); otherwise synonyms are skipped. nltk looks synonyms
    up on the words left after stemming, so e.g. car/auto match but car/automobile don't
    ("automobil"). METEOR's fragmentation penalty keeps even identical text below 1.0
    (1 - 0.5 / n**3 for n words).
    """
    try:
        from nltk.translate.meteor_score import meteor_score  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("nltk", exc) from exc
    wordnet = _get_wordnet()
    return float(
        meteor_score(
            [_tokenize(reference)],
            _tokenize(input),
            wordnet=wordnet if wordnet is not None else _NoWordNet(),
        )
    )


def _rouge(metric: str, input: str, reference: str) -> float:
    """rouge-score's F-measure for ``rougeN`` / ``rougeL``, reference as target, no stemming.

    Google's ``rouge-score`` is the maintained Python ROUGE; F1 (``fmeasure``) is the usual
    single number, and stemming is off as in its defaults (and Hugging Face's ``rouge``).
    ``rouge_l`` is sentence-level ``rougeL`` (not ``rougeLsum``). Its tokeniser lower-cases
    and keeps only ``[a-z0-9]`` runs, so text in other scripts scores 0.
    """
    key = "rougeL" if metric == "rouge_l" else "rouge" + metric.removeprefix("rouge_")
    scorer = _rouge_scorer(key)
    return float(scorer.score(reference, input)[key].fmeasure)


@cache
def _rouge_scorer(key: str) -> Any:
    try:
        from rouge_score import rouge_scorer  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("rouge-score", exc) from exc
    return rouge_scorer.RougeScorer([key], use_stemmer=False)


# --- WordNet for METEOR -------------------------------------------------------------------


class _NoWordNet:
    """Stand-in for nltk's WordNet with no synsets, so METEOR uses exact and stem matches only."""

    def synsets(self, *args: object, **kwargs: object) -> list[object]:
        return []


_wordnet_lock = threading.Lock()
_wordnet_loaded = False
_wordnet_reader: Any = None  # a WordNetCorpusReader, or None when none could be loaded


def wordnet_available() -> bool:
    """Whether METEOR gets WordNet synonyms here, so a grade's reason can say when it doesn't.

    Loads (once, then cached) nltk's own ``wordnet`` data if it is installed, else the
    WordNet 3.0 files in ``$MODELOPT_WORDNET_DIR`` or ``/usr/share/wordnet`` (Debian's
    ``wordnet-base``). Never downloads.
    """
    return _get_wordnet() is not None


def _get_wordnet() -> Any:
    global _wordnet_loaded, _wordnet_reader
    with _wordnet_lock:
        if not _wordnet_loaded:
            _wordnet_reader = _load_wordnet()
            _wordnet_loaded = True
        return _wordnet_reader


def _load_wordnet() -> Any:
    try:
        from nltk.corpus import wordnet  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        wordnet.synsets("dog")  # loads nltk's own data; a LookupError (never a download) if absent
        return wordnet
    except Exception:
        pass
    root = os.environ.get(_WORDNET_DIR_ENV) or _DEFAULT_WORDNET_DIR
    try:
        return _load_wordnet_dir(root)
    except Exception:
        return None


def _load_wordnet_dir(root: str) -> Any:
    """An nltk ``WordNetCorpusReader`` over a plain WordNet 3.0 database directory.

    Debian's ``wordnet-base`` ships the ``data.*``, ``index.*``, ``*.exc`` and ``cntlist.rev``
    files but not ``lexnames`` (its README: the C library has the list compiled in), which
    nltk reads at start-up; the reader falls back to WordNet 3.0's fixed list of 45
    lexicographer files (from ``lexnames(5WN)``). ``index.sense`` is missing too, but nltk
    only opens it for sense-key look-ups, which METEOR never does. Two more adjustments:
    nltk >= 3.10 reads only from directories on ``nltk.data.path``, so ``root`` is added
    there; and the OMW mapping to WordNet 3.0, which would need nltk's own ``wordnet``
    download, is skipped (the data already is 3.0; multilingual look-ups are unused).
    """
    import nltk  # type: ignore[import-untyped]
    from nltk.corpus.reader.wordnet import WordNetCorpusReader  # type: ignore[import-untyped]

    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "data.noun")):
        raise SimilarityError(f"no WordNet database (data.noun) in {root}")
    if root not in nltk.data.path:
        nltk.data.path.append(root)

    class _DirWordNetReader(WordNetCorpusReader):  # type: ignore[misc]
        def open(self, file: str) -> Any:
            if file == "lexnames" and not os.path.isfile(os.path.join(root, file)):
                return io.StringIO(_LEXNAMES_30)
            return super().open(file)

        def map_wn(self, version: str = "wordnet") -> None:
            return None

    with warnings.catch_warnings():
        # "The multilingual functions are not available": expected with omw_reader=None.
        warnings.simplefilter("ignore")
        return _DirWordNetReader(root, None)


_LEXNAME_LIST = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
_LEXNAME_POS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_LEXNAMES_30 = "".join(
    f"{i:02d}\t{name}\t{_LEXNAME_POS[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAME_LIST)
)
