"""Judge calibration: how far each LLM judge agrees with human labels, and whether it may
decide a verdict.

For each judge grader of an eval (``score_model``, ``label_model``, or a ``multi`` holding
one) the labelled grades of the run are paired with the human verdicts: a label of that
grade, or a label of the whole case when the judge is the case's only grader. A label counts
only for the output it was given to (``output_sha256``) and, for a grade label, only for the
judge it was given to (``grader_identity``): labels of another version of the judge are
*stale*. From the pairs: accuracy, true-positive and true-negative rates (each with a
Wilson interval), Cohen's kappa (with the Fleiss-Cohen-Everitt large-sample interval), and,
when the judge is better than chance, the judge-corrected pass rate per model
(Rogan-Gladen, ``stats.corrected_rate``).

Under a calibration policy (``min_labels``, ``min_kappa``: the config's, or the eval
marker's) a judge is *calibrated* when it has at least ``min_labels`` labels and the lower
end of kappa's 95% interval reaches ``min_kappa``. Otherwise it cannot decide its eval's
verdict (``judge.py`` makes the eval *inconclusive*), and ``needed`` says how many more
labels would do, assuming agreement stays as measured:

- too few labels: ``min_labels - n``;
- kappa undefined (the judge and the reviewers gave one and the same verdict to every
  labelled case): at least one more, of the verdict that is missing;
- kappa's lower end below the bar while kappa itself is above it: the interval's half-width
  shrinks as 1/sqrt(n), so ``N = ceil(n * (half / (kappa - min_kappa))**2)`` labels would
  bring it to the bar, and ``needed = N - n`` (at least 1);
- kappa itself at or below the bar: ``None``, more labels will not help: the judge
  disagrees with the reviewers, and its prompt or model must change.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ..records.labels import is_judge, output_sha256
from .gates import CalibrationPolicy, calibration_policy
from .stats import cohens_kappa, corrected_rate, wilson_interval

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..records.labels import Label
    from ..records.models import CaseRecord, GradeRecord


class CorrectedRate(BaseModel):
    """One model's judge pass rate, and the pass rate it stands for given the judge's
    measured true-positive and true-negative rates."""

    model_config = ConfigDict(extra="forbid")

    model: str
    graded: int
    observed: float
    rate: float
    low: float
    high: float


class JudgeCalibration(BaseModel):
    """One judge grader of one eval against the human labels (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    eval: str
    grader: str
    identity: str | None = None
    labels: int = 0  # labelled grades bound to this judge and the outputs of this run
    stale: int = 0  # labels given to another version of the judge (another identity)
    other_outputs: int = 0  # labels of outputs this run did not produce
    both_pass: int = 0
    human_only: int = 0  # the human passed it, the judge failed it
    judge_only: int = 0  # the judge passed it, the human failed it
    both_fail: int = 0
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    kappa: float | None = None
    kappa_low: float | None = None
    kappa_high: float | None = None
    tpr: float | None = None
    tpr_low: float | None = None
    tpr_high: float | None = None
    tnr: float | None = None
    tnr_low: float | None = None
    tnr_high: float | None = None
    policy: CalibrationPolicy | None = None
    calibrated: bool | None = None  # None: no policy, reported only
    needed: int | None = None  # more labels that would calibrate it; None: labels cannot
    why: str = ""
    corrected: list[CorrectedRate] = Field(default_factory=list)

    def cells(self) -> dict[str, str]:
        """The agreement as display text (each report renders it the same way)."""
        return {
            "accuracy": _interval(self.accuracy, self.accuracy_low, self.accuracy_high, "%"),
            "kappa": _interval(self.kappa, self.kappa_low, self.kappa_high, "f"),
            "tpr": _interval(self.tpr, self.tpr_low, self.tpr_high, "%"),
            "tnr": _interval(self.tnr, self.tnr_low, self.tnr_high, "%"),
            "calibrated": {True: "yes", False: "no", None: "no policy"}[self.calibrated],
            "needed": (
                "-"
                if self.calibrated is not False
                else "more labels will not do"
                if self.needed is None
                else f"needs {self.needed} more labels"
            ),
        }

    @property
    def summary(self) -> str:
        """One line: the agreement, then the decision."""
        if not self.labels:
            agreement = "no labels"
        else:
            agreement = f"{self.labels} labels, accuracy {_pct(self.accuracy)}"
            if self.kappa is not None:
                agreement += (
                    f", kappa {self.kappa:.2f} [{self.kappa_low:.2f}, {self.kappa_high:.2f}]"
                )
            agreement += f", TPR {_pct(self.tpr)}, TNR {_pct(self.tnr)}"
        if self.calibrated is False:
            return f"judge {self.grader!r} not calibrated: {self.why} ({agreement})"
        state = "calibrated" if self.calibrated else "agreement"
        return f"judge {self.grader!r} {state}: {agreement}"


def _interval(value: float | None, low: float | None, high: float | None, kind: str) -> str:
    if value is None or low is None or high is None:
        return "-"
    if kind == "%":
        return f"{value:.0%} [{low:.0%}, {high:.0%}]"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def calibrate(
    cases: Sequence[CaseRecord], labels: Sequence[Label], policy: CalibrationPolicy | None
) -> list[JudgeCalibration]:
    """A calibration for every judge grader of every eval in ``cases`` that has labels or is
    under a policy (``policy``, or the eval marker's, which wins)."""
    index: dict[tuple[str, str, str, int], list[Label]] = defaultdict(list)
    for label in labels:
        index[(label.eval, label.case_id, label.model, label.sample)].append(label)
    judged: dict[tuple[str, str], list[tuple[CaseRecord, GradeRecord]]] = defaultdict(list)
    marker: dict[str, CalibrationPolicy] = {}
    for case in cases:
        if case.calibration is not None and case.eval not in marker:
            found = calibration_policy(case.calibration, f"eval {case.eval}")
            if found is not None:
                marker[case.eval] = found
        if case.status not in ("passed", "failed"):
            continue
        for grade in case.grades:
            if grade.error is None and is_judge(grade):
                judged[(case.eval, grade.name)].append((case, grade))
    out = []
    for (eval_name, grader), items in judged.items():
        result = _calibrate_one(eval_name, grader, items, index, marker.get(eval_name, policy))
        if result.policy is not None or result.labels or result.stale or result.other_outputs:
            out.append(result)
    return sorted(out, key=lambda c: (c.eval, c.grader))


def _calibrate_one(
    eval_name: str,
    grader: str,
    items: list[tuple[CaseRecord, GradeRecord]],
    index: dict[tuple[str, str, str, int], list[Label]],
    policy: CalibrationPolicy | None,
) -> JudgeCalibration:
    identities = Counter(grade.identity for _, grade in items)
    result = JudgeCalibration(
        eval=eval_name, grader=grader, identity=identities.most_common(1)[0][0], policy=policy
    )
    table = Counter[tuple[bool, bool]]()
    for case, grade in items:
        human = _human_verdict(case, grade, index.get(_key(case), []), result)
        if human is not None:
            table[(human, grade.passed)] += 1
    result.both_pass, result.human_only = table[(True, True)], table[(True, False)]
    result.judge_only, result.both_fail = table[(False, True)], table[(False, False)]
    n = result.labels = sum(table.values())
    if n:
        agree = result.both_pass + result.both_fail
        result.accuracy = agree / n
        result.accuracy_low, result.accuracy_high = wilson_interval(agree, n)
        positives = result.both_pass + result.human_only
        negatives = result.judge_only + result.both_fail
        if positives:
            result.tpr = result.both_pass / positives
            result.tpr_low, result.tpr_high = wilson_interval(result.both_pass, positives)
        if negatives:
            result.tnr = result.both_fail / negatives
            result.tnr_low, result.tnr_high = wilson_interval(result.both_fail, negatives)
        kappa, interval = cohens_kappa(
            result.both_pass, result.human_only, result.judge_only, result.both_fail
        )
        if not math.isnan(kappa):
            result.kappa, result.kappa_low, result.kappa_high = kappa, *interval
    _decide(result)
    if result.calibrated is not False:
        result.corrected = _corrected(result, items)
    return result


def _key(case: CaseRecord) -> tuple[str, str, str, int]:
    return (case.eval, case.case_id, case.model, case.sample)


def _human_verdict(
    case: CaseRecord, grade: GradeRecord, labels: list[Label], result: JudgeCalibration
) -> bool | None:
    """The latest applicable label's verdict on this grade (a label of the grade first,
    then of the whole case when this judge is the case's only grader); counts the labels
    that do not apply on ``result``."""
    output = None
    own = [lab for lab in labels if lab.grader == grade.name]
    others = [g for g in case.grades if g.name not in (grade.name, "assert")]
    whole = [lab for lab in labels if lab.grader is None] if not others else []
    for group in (own, whole):
        usable = []
        for label in group:
            if label.grader is not None and label.grader_identity != grade.identity:
                result.stale += 1
                continue
            if label.output_sha256 is not None:
                output = output or output_sha256(case.output)
                if label.output_sha256 != output:
                    result.other_outputs += 1
                    continue
            usable.append(label)
        if usable:
            return max(usable, key=lambda lab: lab.time).verdict == "pass"
    return None


def _decide(result: JudgeCalibration) -> None:
    """Calibrated or not under the policy, and how many more labels would do (module
    docstring)."""
    policy = result.policy
    if policy is None:
        return
    n = result.labels
    stale = (
        f"; {result.stale} labels are for another version of this judge (its model, prompt "
        "or parameters changed since): review its grades again"
        if result.stale
        else ""
    )
    result.calibrated = False
    if n < policy.min_labels:
        result.needed = policy.min_labels - n
        result.why = f"{n} labels, fewer than the {policy.min_labels} the policy asks for{stale}"
        return
    kappa, low = result.kappa, result.kappa_low
    if kappa is None or low is None:
        # undefined only when the judge and the reviewers all said one and the same thing
        said = "pass" if result.both_pass == n else "fail"
        result.needed = 1
        result.why = (
            f"kappa is undefined: the judge and the reviewers said {said!r} of every labelled "
            f"case: label cases that {_other(said)} too{stale}"
        )
        return
    if kappa <= policy.min_kappa:
        result.needed = None
        result.why = (
            f"kappa {kappa:.2f} is not above {policy.min_kappa:g}: the judge disagrees with the "
            "reviewers, and more labels will not change that: improve its prompt or model, "
            f"then label its grades again{stale}"
        )
        return
    if low < policy.min_kappa:
        half = kappa - low
        total = math.ceil(n * (half / (kappa - policy.min_kappa)) ** 2)
        result.needed = max(1, total - n)
        result.why = (
            f"kappa {kappa:.2f} but its interval reaches down to {low:.2f}, below "
            f"{policy.min_kappa:g} (the count assumes the agreement stays as measured){stale}"
        )
        return
    result.calibrated = True


def _other(verdict: str) -> str:
    return "fail" if verdict == "pass" else "pass"


def _corrected(
    result: JudgeCalibration, items: list[tuple[CaseRecord, GradeRecord]]
) -> list[CorrectedRate]:
    positives = result.both_pass + result.human_only
    negatives = result.judge_only + result.both_fail
    by_model: dict[str, list[bool]] = defaultdict(list)
    for case, grade in items:
        by_model[case.model].append(grade.passed)
    out = []
    for model, passes in sorted(by_model.items()):
        observed = sum(passes) / len(passes)
        found = corrected_rate(
            observed,
            len(passes),
            (result.both_pass, positives),
            (result.both_fail, negatives),
        )
        if found is not None:
            rate, (low, high) = found
            out.append(
                CorrectedRate(
                    model=model,
                    graded=len(passes),
                    observed=observed,
                    rate=rate,
                    low=low,
                    high=high,
                )
            )
    return out
