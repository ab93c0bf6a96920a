"""Fine-tuning jobs (``/v1/fine_tuning/jobs*``): a per-retrieval state machine over files.

A real job runs for hours; here each ``GET /v1/fine_tuning/jobs/{id}`` moves it one step,
so a test decides what a client sees on each poll: validating_files -> queued (or
``failed`` with ``error.code`` ``invalid_training_file`` when the file does not conform)
-> running, then ``fine_tuning_steps`` retrievals each add a metrics event (falling
``train_loss``) and a checkpoint, and the last one makes it ``succeeded`` with
``fine_tuned_model`` ``ft:<base>:modelopt:<suffix>:<id8>``. Events, checkpoints and the
job list are newest first with ``after`` / ``limit`` cursors; the list filters on
``metadata[k]=v``. Cancel, pause and resume work from the states OpenAI allows them in.

Files are checked at creation against the method's format (``training_files``) but the
job only fails on them when it is first polled, as on OpenAI. A ``purpose="fine-tune"``
upload must be ``.jsonl``. OpenAI is winding self-serve fine-tuning down, so an
organisation may lose access: ``fine_tuning_access = False`` makes job creation a 403.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from .common import (
    CREATED,
    bad_metadata,
    count_tokens,
    cursor_page,
    digest,
    error,
    injected,
    invalid_metadata,
    metadata_filter,
    missing,
    not_an_object,
    server_error,
    unparsable,
)
from .training_files import MIN_EXAMPLES, file_problem

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .common import Ledger
    from .files import File, Files

#: ``method.type`` values (spec ``FineTuneMethod``).
_FT_METHODS: Final = ("supervised", "dpo", "reinforcement")
#: Grader types a reinforcement job takes (spec ``FineTuneReinforcementMethod.grader``).
_RFT_GRADERS: Final = frozenset(
    {"string_check", "text_similarity", "python", "score_model", "multi"}
)
#: What "auto" hyperparameters resolve to once a job's files are validated.
_FT_AUTO: Final = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}
#: The 403 an organisation without fine-tuning gets. OpenAI publishes no exact wording for
#: the 2026 wind-down; this follows its error shape and says what its notice says.
NO_FINE_TUNING_ACCESS: Final = (
    "Your organization does not have access to fine-tuning. Self-serve fine-tuning is being "
    "wound down: organizations that have not fine-tuned before can no longer create "
    "fine-tuning jobs."
)
#: The actions on one job: (method, action after the id) -> handled here.
_JOB_ROUTES: Final = frozenset(
    {
        ("GET", None),
        ("POST", "cancel"),
        ("POST", "pause"),
        ("POST", "resume"),
        ("GET", "events"),
        ("GET", "checkpoints"),
    }
)


@dataclass
class _FineTuneJob:
    """One fine-tuning job: validating_files -> queued -> running -> succeeded (or failed)."""

    id: str
    model: str
    training_file: str
    validation_file: str | None
    method: dict[str, Any]  # {"type": ..., "<type>": {"hyperparameters": {...}, ...}}
    metadata: dict[str, str] | None
    suffix: str | None
    seed: int
    #: (error code, message, param) found in the files at creation: the job fails on them.
    problem: tuple[str, str, str] | None
    #: Tokens in the training file (whitespace words), for ``trained_tokens``.
    tokens: int
    total_steps: int = 3
    status: str = "validating_files"
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None

    @property
    def kind(self) -> str:
        return str(self.method["type"])

    @property
    def hyperparameters(self) -> dict[str, Any]:
        settings = self.method.setdefault(self.kind, {})
        hyperparameters: dict[str, Any] = settings.setdefault("hyperparameters", {})
        return hyperparameters

    @property
    def model_name(self) -> str:
        """``ft:<base>:<org>:<suffix>:<id8>``, the name OpenAI gives the trained model."""
        return f"ft:{self.model}:modelopt:{self.suffix or ''}:{digest('ft', self.id)[:8]}"

    def clock(self) -> int:
        """The next deterministic timestamp: one second per event."""
        return CREATED + len(self.events)

    def event(
        self, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        self.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{digest(self.id, len(self.events))[:20]}",
                "created_at": self.clock(),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data and "step" in data else "message",
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The ``FineTuningJob`` object (every field the spec requires, nulls included)."""
        hyper = self.hyperparameters
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": CREATED,
            "finished_at": self.finished_at,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": "org-modelopt",
            "result_files": [],
            "status": self.status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": {
                name: hyper.get(name, "auto")
                for name in ("batch_size", "learning_rate_multiplier", "n_epochs")
            },
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "integrations": [],
            "seed": self.seed,
            "estimated_finish": None,
            "method": self.method,
            "metadata": self.metadata,
            **({"user_provided_suffix": self.suffix} if self.suffix else {}),
        }


class FineTuning:
    """Create, list, retrieve (one step each), cancel, pause and resume jobs; list a job's
    events and checkpoints."""

    def __init__(
        self, ledger: Ledger, files: Files, known_models: Callable[[], set[str] | None]
    ) -> None:
        self._ledger = ledger
        self._lock = ledger.lock
        self._files = files
        self._known_models = known_models
        self._jobs: dict[str, _FineTuneJob] = {}
        self._faults: list[tuple[int, str, str | None]] = []
        self.fine_tuning_access = True
        self.fine_tuning_steps = 3
        self.fine_tuning_lost_replies = 0
        files.checks["fine-tune"] = _check_upload

    def reset(self) -> None:
        """Forget every job and fault and restore the knobs. Caller holds the lock."""
        self._jobs.clear()
        self._faults.clear()
        self.fine_tuning_access = True
        self.fine_tuning_steps = 3
        self.fine_tuning_lost_replies = 0

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every job as the API shows it, oldest first (without advancing it)."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [job.to_json() for job in jobs]

    def fault(self, status: int, message: str, code: str | None, times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.extend([(status, message, code)] * times)

    async def route(self, request: web.Request, raw: bytes, body: Any) -> web.Response | None:
        """``/v1/fine_tuning/jobs*``; None for any other path (which then answers 404)."""
        if not request.path.startswith("/v1/fine_tuning/jobs"):
            return None
        parts = request.path.split("/")[3:]  # "", "v1", "fine_tuning", "jobs", ...
        if parts[:1] != ["jobs"] or "" in parts or len(parts) > 3:
            return None
        method, rest, query = request.method, parts[1:], request.query
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return injected(*fault)
        if not rest:
            if method == "POST":
                if raw and body is None:
                    return unparsable()
                return self._create(body)
            if method == "GET":
                return self._list(query)
            return None
        action = rest[1] if len(rest) == 2 else None
        if (method, action) not in _JOB_ROUTES:
            return None
        with self._lock:
            job = self._jobs.get(rest[0])
        if job is None:
            return error(
                404,
                f"Could not find fine-tuning job {rest[0]!r}.",
                "invalid_request_error",
                "fine_tuning_job_not_found",
                "fine_tuning_job_id",
            )
        if action is None:
            with self._lock:
                _advance(job)
                return web.json_response(job.to_json())
        if action == "events":
            return web.json_response(
                cursor_page(job.events[::-1], query.get("after"), query.get("limit"), 20)
            )
        if action == "checkpoints":
            return web.json_response(
                cursor_page(job.checkpoints[::-1], query.get("after"), query.get("limit"), 10)
            )
        return self._change(job, action)

    def _create(self, body: Any) -> web.Response:
        if not self.fine_tuning_access:
            return error(
                403, NO_FINE_TUNING_ACCESS, "invalid_request_error", "fine_tuning_not_available"
            )
        if not isinstance(body, dict):
            return not_an_object()
        for name in ("model", "training_file"):
            if not isinstance(body.get(name), str) or not body[name]:
                return missing(name)
        model = body["model"]
        with self._lock:
            tuned = {job.fine_tuned_model for job in self._jobs.values()}
        known = self._known_models()
        if known is not None and model not in known and model not in tuned:
            return error(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                "invalid_request_error",
                "model_not_available",
                "model",
            )
        suffix, seed, metadata = body.get("suffix"), body.get("seed"), body.get("metadata")
        if suffix is not None and not (isinstance(suffix, str) and 1 <= len(suffix) <= 64):
            return error(
                400,
                "Invalid 'suffix': expected a string of 1 to 64 characters.",
                "invalid_request_error",
                "invalid_value",
                "suffix",
            )
        if seed is not None and not (
            isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 2_147_483_647
        ):
            return error(
                400,
                "Invalid 'seed': expected an integer from 0 to 2147483647.",
                "invalid_request_error",
                "invalid_value",
                "seed",
            )
        if bad_metadata(metadata):
            return invalid_metadata()
        method, why = _method(body)
        if why is not None:
            return why
        kind = str(method["type"])
        files: dict[str, File] = {}
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None:
                continue
            file = self._files.get(file_id) if isinstance(file_id, str) else None
            if file is None or file.purpose != "fine-tune":
                why_not = "does not exist" if file is None else f"has purpose {file.purpose!r}"
                return error(
                    400,
                    f"Invalid '{name}': {file_id!r} {why_not}; upload it with purpose 'fine-tune'.",
                    "invalid_request_error",
                    "invalid_value",
                    name,
                )
            files[name] = file
        problem: tuple[str, str, str] | None = None
        found = file_problem(kind, files["training_file"].data, "Training", MIN_EXAMPLES)
        if found is not None:
            detail = f"The job failed due to an invalid training file. {found}"
            problem = ("invalid_training_file", detail, "training_file")
        elif "validation_file" in files:
            found = file_problem(kind, files["validation_file"].data, "Validation", 1)
            if found is not None:
                detail = f"The job failed due to an invalid validation file. {found}"
                problem = ("invalid_validation_file", detail, "validation_file")
        job_id = self._ledger.new_id("ftjob-fake")
        job = _FineTuneJob(
            id=job_id,
            model=model,
            training_file=files["training_file"].id,
            validation_file=files["validation_file"].id if "validation_file" in files else None,
            method=method,
            metadata=None if metadata is None else dict(metadata),
            suffix=suffix,
            seed=int(digest("seed", job_id)[:7], 16) if seed is None else seed,
            problem=problem,
            tokens=count_tokens(files["training_file"].data.decode("utf-8", "replace")),
            total_steps=max(1, self.fine_tuning_steps),
        )
        job.event(f"Created fine-tuning job: {job_id}")
        validating = f"Validating training file: {job.training_file}"
        if job.validation_file:
            validating += f" and validation file: {job.validation_file}"
        job.event(validating)
        with self._lock:
            self._jobs[job_id] = job
            lost = self.fine_tuning_lost_replies > 0
            if lost:
                self.fine_tuning_lost_replies -= 1
        if lost:
            return server_error()
        return web.json_response(job.to_json())

    def _list(self, query: Mapping[str, str]) -> web.Response:
        """Newest first; ``metadata[k]=v`` keeps jobs with every such pair, ``metadata=null``
        jobs without metadata."""
        wanted = metadata_filter(query)
        only_null = query.get("metadata") == "null"
        with self._lock:
            jobs = list(reversed(self._jobs.values()))
            items = [
                job.to_json()
                for job in jobs
                if (
                    job.metadata is None
                    if only_null
                    else all((job.metadata or {}).get(k) == v for k, v in wanted.items())
                )
            ]
        return web.json_response(
            cursor_page(items, query.get("after"), query.get("limit"), 20, ids=False)
        )

    def _change(self, job: _FineTuneJob, action: str) -> web.Response:
        """Cancel, pause or resume: allowed only from the states OpenAI allows them in."""
        allowed = {
            "cancel": ("validating_files", "queued", "running", "paused"),
            "pause": ("running",),
            "resume": ("paused",),
        }[action]
        with self._lock:
            if job.status not in allowed:
                return error(
                    400,
                    f"Cannot {action} fine-tuning job {job.id}: its status is '{job.status}'.",
                    "invalid_request_error",
                    "invalid_job_status",
                )
            if action == "cancel":
                job.status = "cancelled"
                job.event("The job was cancelled")
            elif action == "pause":
                job.status = "paused"
                job.event("The job was paused")
            else:
                job.status = "queued"
                job.event("The job was resumed")
            return web.json_response(job.to_json())


def _check_upload(filename: str, data: bytes) -> web.Response | None:
    """A ``purpose="fine-tune"`` upload must be a ``.jsonl`` file."""
    if filename.endswith(".jsonl"):
        return None
    return error(
        400,
        "Invalid file format for Fine-Tuning API. Must be .jsonl",
        "invalid_request_error",
        "invalid_file_format",
        "file",
    )


def _advance(job: _FineTuneJob) -> None:
    """One retrieval's worth of progress. Caller holds the lock."""
    if job.status == "validating_files":
        if job.problem is not None:
            code, message, param = job.problem
            job.status, job.error = "failed", {"code": code, "message": message, "param": param}
            job.finished_at = job.clock()
            job.event(message, level="error")
            return
        hyper = job.hyperparameters
        for name, value in _FT_AUTO.items():
            if (name != "beta" or job.kind == "dpo") and hyper.get(name, "auto") == "auto":
                hyper[name] = value
        job.status = "queued"
        job.event("Files validated, moving job to queued state")
    elif job.status == "queued":
        job.status = "running"
        job.event("Fine-tuning job started")
    elif job.status == "running":
        job.step += 1
        metrics, checkpoint_metrics, text = _metrics(job)
        job.event(f"Step {job.step}/{job.total_steps}: {text}", data=metrics)
        job.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt_{digest(job.id, job.step)[:24]}",
                "created_at": job.clock(),
                "fine_tuned_model_checkpoint": f"{job.model_name}:ckpt-step-{job.step}",
                "fine_tuning_job_id": job.id,
                "step_number": job.step,
                "metrics": checkpoint_metrics,
            }
        )
        del job.checkpoints[:-3]  # like OpenAI, only the last three are kept
        job.event(f"Checkpoint created at step {job.step}")
        if job.step >= job.total_steps:
            job.fine_tuned_model = job.model_name
            n_epochs = job.hyperparameters.get("n_epochs")
            job.trained_tokens = job.tokens * (n_epochs if isinstance(n_epochs, int) else 1)
            job.event(f"New fine-tuned model created: {job.fine_tuned_model}")
            job.status = "succeeded"
            job.finished_at = job.clock()
            job.event("The job has successfully completed")


def _method(body: dict[str, Any]) -> tuple[dict[str, Any], web.Response | None]:
    """The job's ``method`` (supervised when absent), or the 400 that rejects it."""
    raw = body.get("method")
    if raw is None:
        raw = {"type": "supervised"}
    if not isinstance(raw, dict) or raw.get("type") not in _FT_METHODS:
        got = raw.get("type") if isinstance(raw, dict) else raw
        return {}, error(
            400,
            f"Invalid value for 'method.type': {got!r}. Expected one of {list(_FT_METHODS)}.",
            "invalid_request_error",
            "invalid_value",
            "method.type",
        )
    method = json.loads(json.dumps(raw))  # a private copy: the job resolves "auto" in it
    kind = method["type"]
    settings = method.setdefault(kind, {})
    if not isinstance(settings, dict):
        return {}, error(
            400,
            f"Invalid value for 'method.{kind}': expected an object.",
            "invalid_request_error",
            "invalid_value",
            f"method.{kind}",
        )
    legacy = body.get("hyperparameters")  # deprecated top-level form, supervised only
    if kind == "supervised" and isinstance(legacy, dict):
        settings.setdefault("hyperparameters", dict(legacy))
    if kind == "reinforcement":
        grader = settings.get("grader")
        if not isinstance(grader, dict):
            return {}, missing("method.reinforcement.grader")
        if grader.get("type") not in _RFT_GRADERS:
            return {}, error(
                400,
                f"Invalid value for 'method.reinforcement.grader.type': {grader.get('type')!r}. "
                f"Expected one of {sorted(_RFT_GRADERS)}.",
                "invalid_request_error",
                "invalid_value",
                "method.reinforcement.grader.type",
            )
    return method, None


def _metrics(job: _FineTuneJob) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(metrics event data, checkpoint metrics, event text) for the job's current step:
    the loss falls (the reward rises) with every step."""
    step, decay = job.step, 0.6**job.step
    if job.kind == "reinforcement":
        reward = round(1 - decay, 4)
        data = {
            "step": step,
            "total_steps": job.total_steps,
            "scores": {"train_reward_mean": reward},
        }
        return data, {"step": float(step)}, f"train reward mean={reward}"
    metrics: dict[str, Any] = {
        "step": step,
        "train_loss": round(1.6 * decay, 4),
        "train_mean_token_accuracy": round(1 - 0.5 * decay, 4),
    }
    text = f"training loss={metrics['train_loss']}"
    if job.validation_file:
        metrics["valid_loss"] = round(1.7 * decay, 4)
        metrics["valid_mean_token_accuracy"] = round(1 - 0.55 * decay, 4)
        text += f", validation loss={metrics['valid_loss']}"
    return {**metrics, "total_steps": job.total_steps}, {**metrics, "step": float(step)}, text
