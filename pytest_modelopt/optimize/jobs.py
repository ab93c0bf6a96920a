"""What every fine-tuning backend is handed and hands back: versioned, documented records.

A launch is a directory (``.modelopt/finetune/<name>/`` by default, or ``--out DIR``)::

    train.jsonl        training examples in OpenAI's format for the method
    validation.jsonl   optional; never overlaps train.jsonl
    grader.json        RFT only: the eval's graders as OpenAI grader JSON (the reward)
    manifest.json      Manifest: what was built, from which run, which cases it trained on
    job.json           JobInfo: written by the backend once a job exists, updated as it runs

A backend reads the manifest and the files, never the run records, so ``export`` output can
be launched later by any backend, and a job can always say which cases it trained on.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ..records.store import write_json_atomic

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST_SCHEMA_VERSION = 1
Method = Literal["sft", "dpo", "rft"]
# OpenAI's ``method.type`` for each of ours.
OPENAI_METHOD: dict[str, str] = {"sft": "supervised", "dpo": "dpo", "rft": "reinforcement"}
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "exported"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Issue(_Model):
    """One finding of validation: an error stops a launch, a warning is printed."""

    level: Literal["error", "warning"]
    code: str  # e.g. missing_assistant_message, too_few_examples, duplicate
    message: str
    line: int | None = None  # 1-based line of train.jsonl, when it is about one example


class ValidationReport(_Model):
    examples: int
    issues: list[Issue] = Field(default_factory=list)
    tokens: int = 0  # estimated tokens in the training file (one epoch)
    max_example_tokens: int = 0
    n_epochs: int = 1
    estimated_cost_usd: float | None = None  # None: no training price known for the model
    label_counts: dict[str, int] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(issue.level == "error" for issue in self.issues)


class Manifest(_Model):
    """What a training set is: written next to the files, carried by the model it trains."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    kind: Literal["modelopt.finetune"] = "modelopt.finetune"
    name: str  # the directory's name; also the job's suffix where the backend has one
    method: Method
    base_model: str  # the student: the model that is trained
    teacher: str | None = None  # whose outputs became the data (sft, dpo)
    source_run: str | None = None  # run id the examples came from
    evals: list[str] = Field(default_factory=list)
    holdout_fraction: float = 0.2
    split_salt: str = "modelopt"
    trained_cases: list[str] = Field(default_factory=list)  # case ids in train.jsonl
    holdout_cases: list[str] = Field(default_factory=list)  # never in any training file
    train_file: str = "train.jsonl"
    validation_file: str | None = None
    grader_file: str | None = None  # rft
    response_format: dict[str, Any] | None = None  # rft: the output schema, when the eval has one
    examples: int = 0
    dataset_sha256: str = ""  # of the training (+ validation, + grader) files: idempotency key
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    validation: ValidationReport | None = None
    created_at: str = ""


class JobEvent(_Model):
    created_at: float
    id: str | None = None  # the backend's cursor: pass the last one seen to events(after=)
    level: str = "info"
    message: str
    data: dict[str, Any] | None = None


class JobInfo(_Model):
    """A fine-tuning job as a backend reports it; ``job.json`` in the launch directory."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    backend: str
    id: str
    status: str  # open string: OpenAI's statuses (validating_files, queued, running, ...)
    base_model: str
    method: Method
    dataset_sha256: str
    fine_tuned_model: str | None = None  # what to pass to --eval-models once it succeeded
    checkpoint_dir: str | None = None  # local backends: where the weights are
    created_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    checkpoints: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)  # last reported (e.g. train_loss)
    serve_hint: str | None = None  # how to put the model behind an OpenAI-compatible API
    launch_dir: str | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


class BackendError(Exception):
    """A launch or a job call that cannot go on; the message says what to do instead.

    ``retryable``: a transient failure (rate limit, 5xx, timeout) that the same call may
    get past later, so a follower keeps polling instead of giving up.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Backend(Protocol):
    """A place fine-tuning jobs run. Implement this and return it from the
    ``pytest_modelopt_finetune_backend`` hook to add one (Together, Fireworks, ...)."""

    name: str

    def launch(self, manifest: Manifest, launch_dir: Path) -> JobInfo:
        """Start (or find, for the same ``dataset_sha256``) the job; write nothing but job.json."""
        ...

    def refresh(self, job: JobInfo) -> JobInfo:
        """The job's current state."""
        ...

    def events(self, job: JobInfo, after: str | None = None) -> list[JobEvent]:
        """Events since ``after`` (a backend-specific cursor), oldest first."""
        ...

    def cancel(self, job: JobInfo) -> JobInfo: ...

    # Optional, looked up with getattr (flow.preflight), so a backend may leave them out:
    #   notices(manifest) -> list[str]: lines a launch states first (printed, and above the
    #     confirmation question), e.g. the openai backend's end dates;
    #   refusal(manifest) -> str | None: why this launch cannot go now, with what to run
    #     instead; a launch it refuses stops before confirmation and before any request.


def files_sha256(paths: list[Path]) -> str:
    """One hash over the files a job trains on, in order: same data, same hash, same job."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def read_manifest(launch_dir: Path) -> Manifest:
    return Manifest.model_validate_json((launch_dir / "manifest.json").read_bytes())


def read_job(launch_dir: Path) -> JobInfo | None:
    path = launch_dir / "job.json"
    return JobInfo.model_validate_json(path.read_bytes()) if path.is_file() else None


def write_job(launch_dir: Path, job: JobInfo) -> None:
    write_json_atomic(launch_dir / "job.json", job)
