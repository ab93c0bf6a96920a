"""Run records: the versioned on-disk format every later stage reads.

Layout of one run (``<dir>/runs/<run-id>/``)::

    run.json             RunInfo: who/when/what, written when the run starts
    cases/<writer>.jsonl one CaseRecord per line, appended as each case finishes;
                         one file per process ("main", or the xdist worker id "gw0"...)
    summary.json         RunSummary, written when the session ends
    report.json          EvalReport (verdict/document.py): the verdict, written after it

The models here are the format; ``store.py`` reads and writes it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .trajectory import Trajectory

#: The run format this version writes; readers accept every version from 1 up to it, and
#: refuse a newer one (written by a newer pytest-modelopt) rather than misread it.
#: 2: every case line carries its ``schema_version`` (lines without one are version 1).
#: 3: ``cost`` is the known part of a case's (and a summary row's) cost, and
#: ``unpriced_calls`` / ``unpriced_judge_calls`` count the calls with no known price.
#: 4: each grade carries its grader's ``identity`` (labels bind to it), each case its
#: eval's ``calibration`` policy (its marker's), and a row's verdict may be ``inconclusive``.
#: 5: a case may carry its agent's ``trajectory`` (``trajectory.py``; null when none ran).
SCHEMA_VERSION = 5


Status = Literal["passed", "failed", "error", "pending", "skipped"]
#: error kinds of a case that could not run at all (no key, no recording to replay)
NOT_RUN_ERRORS = frozenset({"not_recorded", "no_key"})


#: ``inconclusive``: a judge of the eval is not calibrated against human labels under the
#: calibration policy, so it cannot decide the eval's verdict (verdict/calibration.py)
Verdict = Literal["pass", "fail", "pending", "error", "none", "inconclusive"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GradeRecord(_Record):
    """One grader's verdict on one sample of one case."""

    name: str
    score: float
    passed: bool
    reason: str = ""
    error: str | None = None
    sub_scores: dict[str, float] = Field(default_factory=dict)
    # the grader as OpenAI grader JSON (None: a Python function): what RFT rewards with
    grader: dict[str, Any] | None = None
    # sha256 (16 hex digits) of what makes the grader judge as it does (Grader.identity);
    # None in runs written before format 4, and for a test body's own asserts
    identity: str | None = None


class ErrorRecord(_Record):
    """Why a case has no grade: an API failure, a prompt that would not render, a crash."""

    kind: str
    message: str


class UsageRecord(_Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class CaseRecord(_Record):
    """The result of one test item: one eval x model x case x sample."""

    schema_version: int = 1  # a line without one was written by version 1
    eval: str
    nodeid: str
    model: str
    case_id: str
    sample: int = 0
    status: Status
    threshold: float | None = None
    input: Any = None
    output: str | None = None
    item: dict[str, Any] | None = None  # the dataset row's fields: what graders read as item
    completion_id: str | None = None  # the answer's id at the provider (stored completions)
    completion_metadata: dict[str, str] | None = None  # what it was stored with (store = true)
    grades: list[GradeRecord] = Field(default_factory=list)
    error: ErrorRecord | None = None
    latency_s: float | None = None
    usage: UsageRecord = Field(default_factory=UsageRecord)
    # the known part of the cost (None: no call had a known price); unpriced_calls > 0
    # makes it a lower bound
    cost: float | None = None
    unpriced_calls: int = 0
    calls: int = 0
    duration_s: float = 0.0
    note: str | None = None
    fingerprint: dict[str, str] = Field(default_factory=dict)
    fail_on: list[str] = Field(default_factory=list)  # the eval's own gates (its marker)
    strict: bool = False  # its threshold applies to the pass rate's lower bound
    # the eval's own calibration policy (its marker's): {"min_labels": N, "min_kappa": K}
    calibration: dict[str, float] | None = None
    judge_calls: int = 0
    judge_tokens: int = 0
    judge_cost: float | None = None
    unpriced_judge_calls: int = 0
    finished_at: float = Field(default_factory=time.time)
    # what an agent did (its items, turns, final output); None when the case ran no agent
    trajectory: Trajectory | None = None

    @property
    def unpriced(self) -> int:
        """Calls with no known price (a version 2 record with no cost: all of them)."""
        return self.unpriced_calls or (self.calls if self.cost is None else 0)

    @property
    def unpriced_judges(self) -> int:
        return self.unpriced_judge_calls or (self.judge_calls if self.judge_cost is None else 0)

    @property
    def score(self) -> float | None:
        """Mean of the grade scores; None when the case was not graded."""
        scored = [g.score for g in self.grades if g.error is None]
        if self.status in ("error", "pending", "skipped") or not scored:
            return None
        return sum(scored) / len(scored)


class RunInfo(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    started_at: str
    plugin_version: str
    models: list[str] = Field(default_factory=list)
    base_url: str | None = None
    rootdir: str = ""
    git_commit: str | None = None
    # what a reader of this run's scores must know, e.g. that a fine-tuned model was
    # scored only on the cases it never trained on
    notes: list[str] = Field(default_factory=list)


class GraderSummary(_Record):
    """How one grader (by name) did within one eval on one model, over graded samples."""

    name: str
    graded: int
    passed: int
    pass_rate: float
    mean_score: float


class EvalSummary(_Record):
    """One row of the summary table: one eval on one model."""

    eval: str
    model: str
    cases: int
    samples: int
    graded: int
    passed: float
    failed: float
    errors: int
    pending: int
    pass_rate: float | None
    mean_score: float | None
    prompt_tokens: int
    completion_tokens: int
    # the known part (None: no call had a known price); unpriced_calls > 0: a lower bound
    cost: float | None
    unpriced_calls: int = 0
    latency_p50: float | None
    latency_p95: float | None
    threshold: float | None
    verdict: Verdict
    note: str | None = None
    strict: bool = False
    pass_rate_low: float | None = None
    pass_rate_high: float | None = None
    score_low: float | None = None
    score_high: float | None = None
    fail_on: list[str] = Field(default_factory=list)
    judge_calls: int = 0
    judge_cost: float | None = None
    unpriced_judge_calls: int = 0
    graders: list[GraderSummary] = Field(default_factory=list)
    # errors for want of a key or a recording (a fork's replay-only run): reported, not failed
    errors_not_run: int = 0
    skipped: int = 0


class RunSummary(_Record):
    schema_version: int = SCHEMA_VERSION
    run: RunInfo
    finished_at: str
    evals: list[EvalSummary]
    error_messages: dict[str, int] = Field(default_factory=dict)
