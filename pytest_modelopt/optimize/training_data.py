"""Training sets from run records: SFT, DPO and RFT examples in OpenAI's formats.

Every case record already holds the rendered prompt (``input``), the model's answer
(``output``), its grades (with each grader as OpenAI JSON) and the dataset row (``item``).
That is all distillation needs:

- **SFT**: the teacher's *passing* answers, as ``{"messages": prompt + answer}``; or, with
  ``answers_from``, a dataset field (the case's reference answer, such as its label) as the
  answer to every case's prompt, whatever the model said: plain supervised fine-tuning on
  labelled data, where the run only supplies the prompts as they were rendered.
- **DPO**: for one case and one prompt, a passing answer preferred over a failing one
  (from ``samples > 1`` or from two models), as ``input`` / ``preferred_output`` /
  ``non_preferred_output``.
- **RFT**: the case's prompt and fields, with the eval's own graders as the reward.

Human labels of whole cases (``records/labels.py``: ``modelopt review``, the run viewer)
outrank the graders: an answer a reviewer passed is preferred as an SFT example (and is
one even if a grader failed it), an answer a reviewer failed is never one; a reviewer's
pass and fail of two answers to the same case make a DPO pair. With ``pin_labelled``,
every labelled case is held out: the cases people looked at stay the ones a fine-tuned
model is scored on.

The split into train and holdout is by case id and deterministic (a hash, not a random
draw), so the same case is held out in every eval, every run and every later launch:
a model is never scored on a case it trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..records.labels import output_sha256

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ..records.labels import Label
    from ..records.models import CaseRecord
    from .jobs import Method

RESERVED_RFT_KEYS = frozenset({"messages", "tools"})


class TrainingDataError(Exception):
    """The records cannot make this training set; the message says what to change."""


def in_holdout(case_id: str, fraction: float, salt: str = "modelopt") -> bool:
    """Whether a case is held out: the same answer for the same id, everywhere."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{salt}\0{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class TrainingSet:
    """Examples ready to write, with what they came from and what was left out and why."""

    method: Method
    examples: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)  # the trained cases, one per example
    holdout_cases: list[str] = field(default_factory=list)
    evals: list[str] = field(default_factory=list)
    grader: dict[str, Any] | None = None  # rft: the reward
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many records
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True)
class Selection:
    """Which records feed a training set."""

    teacher: str | None = None  # sft / rft: whose answers; None: the run's only model
    evals: Sequence[str] = ()  # eval names or globs; empty: every eval
    min_score: float | None = None
    holdout_fraction: float = 0.2
    salt: str = "modelopt"
    validation_fraction: float = 0.0  # of the train cases, for the backend's validation file
    labels: Sequence[Label] = ()  # human labels; those of whole cases outrank the graders
    pin_labelled: bool = False  # hold out every case a label names
    answers_from: str | None = None  # sft: this dataset field is the answer, not the model's

    @property
    def pinned(self) -> frozenset[str]:
        """Case ids held out because a reviewer labelled them (with ``pin_labelled``)."""
        return frozenset(lab.case_id for lab in self.labels) if self.pin_labelled else frozenset()


class HumanVerdicts:
    """The reviewers' verdicts on answers: the latest label of the whole case (``grader``
    null) given to that answer (its ``output_sha256``, when the label has one)."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self._by_case: dict[tuple[str, str, str, int], list[Label]] = defaultdict(list)
        for label in labels:
            if label.grader is None:
                self._by_case[(label.eval, label.case_id, label.model, label.sample)].append(label)

    def of(self, record: CaseRecord) -> bool | None:
        """True: a reviewer passed this answer; False: failed it; None: nobody said."""
        found = self._by_case.get((record.eval, record.case_id, record.model, record.sample))
        if not found:
            return None
        sha = output_sha256(record.output)
        usable = [lab for lab in found if lab.output_sha256 in (None, sha)]
        if not usable:
            return None
        return max(usable, key=lambda lab: lab.time).verdict == "pass"


def _chosen(records: Iterable[CaseRecord], selection: Selection) -> list[CaseRecord]:
    out = []
    for record in records:
        if selection.evals and not any(fnmatchcase(record.eval, g) for g in selection.evals):
            continue
        out.append(record)
    return out


def _messages(record: CaseRecord) -> list[dict[str, Any]] | None:
    """The rendered prompt as chat messages, or None when it is not a list of them."""
    value = record.input
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        return None
    messages = []
    for message in value:
        if not isinstance(message, dict) or "role" not in message:
            return None
        kept = {k: v for k, v in message.items() if k in ("role", "content", "name")}
        if isinstance(kept.get("content"), list):
            kept["content"] = [_chat_part(part) for part in kept["content"]]
        messages.append(kept)
    return messages


def _chat_part(part: Any) -> Any:
    """A Responses API content part in chat's shape, the shape of OpenAI's fine-tuning
    files (its vision fine-tuning guide: ``{"type": "image_url", "image_url": {"url"}}``).
    An image's URL is kept as recorded: a file's reference is read into a data URL when
    the training file is written (``launch.py``)."""
    if not isinstance(part, dict):
        return part
    if part.get("type") == "input_text":
        return {"type": "text", "text": part.get("text")}
    if part.get("type") == "input_image" and isinstance(part.get("image_url"), str):
        detail = {"detail": part["detail"]} if part.get("detail") else {}
        return {"type": "image_url", "image_url": {"url": part["image_url"], **detail}}
    return part


def _teacher(records: Sequence[CaseRecord], teacher: str | None) -> str:
    models = sorted({r.model for r in records})
    if teacher is not None:
        if teacher not in models:
            raise TrainingDataError(
                f"the run has no cases of model {teacher!r} (it has {', '.join(models) or 'none'})"
            )
        return teacher
    if len(models) != 1:
        raise TrainingDataError(
            f"the run has {len(models)} models ({', '.join(models)}): say whose answers to "
            "learn from with --teacher MODEL"
        )
    return models[0]


def _passes(record: CaseRecord, min_score: float | None) -> bool:
    if record.status != "passed":
        return False
    score = record.score
    return min_score is None or (score is not None and score >= min_score)


def _holdout(out: TrainingSet, records: Iterable[CaseRecord], selection: Selection) -> None:
    """Every case of the run that is held out, whether or not it made an example."""
    ids = {r.case_id for r in records}
    pinned = selection.pinned
    out.holdout_cases = sorted(
        i for i in ids if in_holdout(i, selection.holdout_fraction, selection.salt) or i in pinned
    )


def _keep(
    out: TrainingSet, example: dict[str, Any], case_id: str, eval_name: str, selection: Selection
) -> None:
    """An example goes to the training or the validation file, or is held out."""
    if in_holdout(case_id, selection.holdout_fraction, selection.salt):
        out.skip("held out")
        return
    if case_id in selection.pinned:
        out.skip("held out: labelled by a reviewer")
        return
    if in_holdout(case_id, selection.validation_fraction, selection.salt + "/validation"):
        out.validation.append(example)
    else:
        out.examples.append(example)
    out.case_ids.append(case_id)
    if eval_name not in out.evals:
        out.evals.append(eval_name)


def _hooked(
    example: dict[str, Any],
    record: CaseRecord,
    method: str,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None,
) -> dict[str, Any] | None:
    return example if hook is None else hook(example, record, method)


def sft(
    records: Iterable[CaseRecord],
    selection: Selection,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None = None,
) -> TrainingSet:
    """The teacher's passing answers, one example per (eval, case): its best sample, a
    reviewer's pass first (module docstring)."""
    chosen = _chosen(records, selection)
    teacher = _teacher(chosen, selection.teacher)
    if selection.answers_from is not None:
        return _sft_from_field(chosen, teacher, selection.answers_from, selection, hook)
    out = TrainingSet(method="sft")
    human = HumanVerdicts(selection.labels)
    best: dict[tuple[str, str], tuple[tuple[bool, float], CaseRecord]] = {}
    for record in chosen:
        if record.model != teacher:
            continue
        said = human.of(record)
        if said is False:
            out.skip("failed by a reviewer")
            continue
        if said is None and not _passes(record, selection.min_score):
            out.skip("did not pass" if record.status != "passed" else "below --min-score")
            continue
        if record.output is None or _messages(record) is None:
            out.skip("no recorded prompt or answer")
            continue
        key = (record.eval, record.case_id)
        rank = (said is True, record.score or 0.0)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, record)
    confirmed = sum(rank[0] for rank, _ in best.values())
    if confirmed:
        out.notes.append(f"{confirmed} of the answers were passed by a reviewer")
    answers = {}
    for key, (_, record) in best.items():
        assert record.output is not None
        answers[key] = (record, record.output)
    _sft_examples(out, answers, selection, hook)
    _holdout(out, chosen, selection)
    return out


def _sft_examples(
    out: TrainingSet,
    answers: dict[tuple[str, str], tuple[CaseRecord, str]],
    selection: Selection,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None,
) -> None:
    """One example per (eval, case): the recorded prompt and the chosen answer."""
    seen: set[str] = set()
    for (eval_name, case_id), (record, answer) in sorted(answers.items()):
        messages = _messages(record)
        assert messages is not None
        example = _hooked(
            {"messages": [*messages, {"role": "assistant", "content": answer}]},
            record,
            "sft",
            hook,
        )
        if example is None:
            out.skip("dropped by the pytest_modelopt_training_example hook")
            continue
        fingerprint = json.dumps(example, sort_keys=True)
        if fingerprint in seen:
            out.skip("duplicate of another example")
            continue
        seen.add(fingerprint)
        _keep(out, example, case_id, eval_name, selection)


def _sft_from_field(
    chosen: Sequence[CaseRecord],
    teacher: str,
    name: str,
    selection: Selection,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None,
) -> TrainingSet:
    """The dataset field ``name`` as the answer to each case's recorded prompt: the run
    gives the prompts (rendered as the eval sends them), the dataset the answers. The
    model's answers and grades play no part, so failing cases train too — on the label."""
    out = TrainingSet(method="sft")
    out.notes.append(f"answers: the dataset field {name!r} of each case (not the model's answers)")
    answers: dict[tuple[str, str], tuple[CaseRecord, str]] = {}
    for record in chosen:
        if record.model != teacher or (record.eval, record.case_id) in answers:
            continue
        value = (record.item or {}).get(name)
        if value is None or value == "":
            out.skip(f"no {name!r} field in the case")
            continue
        if _messages(record) is None:
            out.skip("no recorded prompt")
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        answers[(record.eval, record.case_id)] = (record, text)
    if not answers and out.skipped:
        raise TrainingDataError(
            f"no case of {teacher} has a {name!r} field: --answers-from names a dataset "
            "field that holds each case's reference answer"
        )
    _sft_examples(out, answers, selection, hook)
    _holdout(out, chosen, selection)
    return out


def dpo(
    records: Iterable[CaseRecord],
    selection: Selection,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None = None,
) -> TrainingSet:
    """Per case and prompt, the best passing answer preferred over the worst failing one.

    Answers of every model in the run count (samples of one model, or a strong and a weak
    model on the same prompt); ``selection.teacher``, when given, must be the preferred side.
    A reviewer's verdict outranks the graders': an answer passed by a reviewer is preferred
    over one the graders passed, one failed by a reviewer is rejected first.
    """
    out = TrainingSet(method="dpo")
    human = HumanVerdicts(selection.labels)
    reviewed = 0  # pairs of a reviewer's pass and fail
    chosen = _chosen(records, selection)
    groups: dict[tuple[str, str, str], list[CaseRecord]] = defaultdict(list)
    for record in chosen:
        messages = _messages(record)
        if record.output is None or messages is None or record.status not in ("passed", "failed"):
            out.skip("no graded answer")
            continue
        prompt = json.dumps(messages, sort_keys=True)
        groups[(record.eval, record.case_id, prompt)].append(record)
    for (eval_name, case_id, _), group in sorted(groups.items()):
        said = {id(r): human.of(r) for r in group}
        good = [
            r
            for r in group
            if (said[id(r)] or (said[id(r)] is None and _passes(r, selection.min_score)))
            and (selection.teacher is None or r.model == selection.teacher)
        ]
        bad = [
            r
            for r in group
            if (said[id(r)] is False or (said[id(r)] is None and r.status == "failed"))
            and r.output not in {g.output for g in good}
        ]
        if not good or not bad:
            out.skip("no passing-and-failing pair")
            continue
        preferred = max(
            good, key=lambda r: (said[id(r)] is True, r.score or 0.0, r.model, r.sample)
        )
        rejected = min(
            bad, key=lambda r: (said[id(r)] is not False, r.score or 0.0, r.model, r.sample)
        )
        reviewed += bool(said[id(preferred)]) and said[id(rejected)] is False
        messages = _messages(preferred)
        assert messages is not None
        example = _hooked(
            {
                "input": {"messages": messages},
                "preferred_output": [{"role": "assistant", "content": preferred.output}],
                "non_preferred_output": [{"role": "assistant", "content": rejected.output}],
            },
            preferred,
            "dpo",
            hook,
        )
        if example is None:
            out.skip("dropped by the pytest_modelopt_training_example hook")
            continue
        _keep(out, example, case_id, eval_name, selection)
    if reviewed:
        out.notes.append(f"{reviewed} pairs are a reviewer's pass and fail of two answers")
    _holdout(out, chosen, selection)
    return out


def rft(
    records: Iterable[CaseRecord],
    selection: Selection,
    hook: Callable[[dict[str, Any], CaseRecord, str], dict[str, Any] | None] | None = None,
) -> TrainingSet:
    """The cases' prompts and fields, rewarded by the eval's own graders.

    One eval at a time: a job has one grader, and it is this eval's, rebuilt from the
    graders recorded on its cases with the case's fields put back as ``{{ item.x }}``.
    """
    chosen = _chosen(records, selection)
    evals = sorted({r.eval for r in chosen})
    if len(evals) != 1:
        raise TrainingDataError(
            f"RFT trains against one eval's graders; the selection has {len(evals)} evals "
            f"({', '.join(evals) or 'none'}): pick one with --eval NAME"
        )
    model = _teacher(chosen, selection.teacher)  # whose run holds the prompts: any one model
    cases = {}
    for record in chosen:
        if record.model == model and record.sample == 0 and record.status in ("passed", "failed"):
            cases[record.case_id] = record
    out = TrainingSet(method="rft", evals=evals)
    out.grader, out.notes = reward_grader(list(cases.values()))
    for case_id, record in sorted(cases.items()):
        messages = _messages(record)
        if messages is None or messages[-1]["role"] != "user":
            out.skip("prompt does not end with a user message")
            continue
        fields = dict(record.item or {})
        clash = RESERVED_RFT_KEYS & set(fields)
        if clash:
            raise TrainingDataError(
                f"case {case_id}: the dataset field {sorted(clash)[0]!r} is reserved in RFT "
                "training files (messages, tools): rename it in the dataset"
            )
        example = _hooked({"messages": messages, **fields}, record, "rft", hook)
        if example is None:
            out.skip("dropped by the pytest_modelopt_training_example hook")
            continue
        _keep(out, example, case_id, evals[0], selection)
    _holdout(out, chosen, selection)
    return out


BUILDERS = {"sft": sft, "dpo": dpo, "rft": rft}


# -- the RFT reward -------------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a JSON value, with its path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [(path, value)]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _replace(v, rest, new) if k == head else v for k, v in value.items()}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _field_names(value: Any, item: dict[str, Any]) -> set[str]:
    return {
        k
        for k, v in item.items()
        if isinstance(v, (str, int, float))
        and str(v) == str(value)
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
    }


def _one_template(definitions: list[dict[str, Any]], items: list[dict[str, Any]]) -> Any:
    """One grader JSON that, filled with each case's fields, is each case's grader; or None.

    Where the graders differ, a value must be the same field of every case (``reference:
    case["category"]``): that place becomes ``{{ item.category }}``.
    """
    template: Any = definitions[0]
    shape = [path for path, _ in _leaves(template)]
    for definition in definitions[1:]:
        if [path for path, _ in _leaves(definition)] != shape:
            return None
    for index, path in enumerate(shape):
        values = [_leaves(d)[index][1] for d in definitions]
        if len({json.dumps(v) for v in values}) == 1:
            continue
        fields = set.intersection(*(_field_names(v, i) for v, i in zip(values, items, strict=True)))
        if not fields or not all(isinstance(v, str) for v in values):
            return None
        template = _replace(template, path, "{{ item." + sorted(fields)[0] + " }}")
    return template


def reward_grader(records: Sequence[CaseRecord]) -> tuple[dict[str, Any], list[str]]:
    """One OpenAI grader that gives every case the grade its recorded graders gave.

    A grader built per case with a case's value (``string_check(reference=case["x"])``)
    becomes ``reference: "{{ item.x }}"``; it must then read the same for every case.
    Graders that graded only some cases, or that are Python functions, are left out (and
    said so); several graders become a ``multi`` grader averaging them.
    """
    notes: list[str] = []
    by_name: dict[str, list[tuple[dict[str, Any] | None, dict[str, Any]]]] = defaultdict(list)
    for record in records:
        for grade in record.grades:
            if grade.name != "assert":
                by_name[grade.name].append((grade.grader, record.item or {}))
    kept: dict[str, dict[str, Any]] = {}
    for name, graded in sorted(by_name.items()):
        definitions = [d for d, _ in graded if d is not None]
        if len(definitions) < len(graded):
            notes.append(f"grader {name!r} is a Python function: left out of the reward")
            continue
        if len(graded) < len(records):
            notes.append(
                f"grader {name!r} graded {len(graded)} of {len(records)} cases: "
                "left out of the reward"
            )
            continue
        template = _one_template(definitions, [item for _, item in graded])
        if template is None:
            notes.append(
                f"grader {name!r} differs between cases beyond their fields: left out of the "
                "reward (declare it with {{ item.<field> }} templates)"
            )
            continue
        kept[name] = template
    if not kept:
        raise TrainingDataError(
            "no grader of this eval can be the reward: "
            + ("; ".join(notes) if notes else "its cases have only plain asserts")
            + ". Grade with graders.* (string_check, score_model, ...) to train with RFT."
        )
    if len(kept) == 1:
        return next(iter(kept.values())), notes
    names = {name: re.sub(r"\W", "_", name) for name in kept}
    graders = {names[name]: {**grader, "name": names[name]} for name, grader in kept.items()}
    formula = "(" + " + ".join(graders) + f") / {len(graders)}"
    return {
        "type": "multi",
        "name": "reward",
        "graders": graders,
        "calculate_output": formula,
    }, notes
