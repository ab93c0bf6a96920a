"""The ``openai`` backend: OpenAI's fine-tuning API, or any server that implements it.

A launch uploads the files (``files.create(purpose="fine-tune")``) and creates one job
(``fine_tuning.jobs.create`` with ``method`` supervised / dpo / reinforcement); ``refresh``
and ``events`` follow it, with its metrics and checkpoints. Only those endpoints are
assumed, so a ``base_url`` such as Azure OpenAI's works the same.

Launches are idempotent because a job costs money: every job carries the dataset hash in
its ``metadata``, and a second launch of the same data for the same base model finds that
job (through ``job.json`` or ``jobs.list(metadata=...)``) instead of uploading and paying
again. A failed or cancelled job does not count: launching again starts a new one.

OpenAI is winding self-serve fine-tuning down (``openai_dates.py`` holds the dates): on
OpenAI's platform a launch states when job creation ends (and when the base model's family
is shut down), and after that date it refuses before any request, naming the backends that
keep working; every refusal for want of access names them too. ``openai`` is imported on
first use only: it costs ~0.9 s of start-up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model.failures import backoff, classify
from ...model.wire import sdk_data
from ...secrets import redact
from ..jobs import (
    OPENAI_METHOD,
    BackendError,
    JobEvent,
    JobInfo,
    Manifest,
    files_sha256,
    read_job,
    write_job,
)
from .openai_dates import (
    JOB_CREATION_ENDS,
    NEW_ORGANISATIONS_CUT_OFF,
    Deadlines,
    on_openai_platform,
    utc_today,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterator, Mapping

    from openai import OpenAI

__all__ = ["META_BASE_MODEL", "META_NAME", "META_SHA256", "OpenAIBackend"]

#: Metadata keys a job is tagged with, so a later launch can find it.
META_SHA256 = "modelopt_dataset_sha256"
META_NAME = "modelopt_name"
META_BASE_MODEL = "modelopt_base_model"
#: A job in one of these states does not stand in the way of a new launch.
_GONE = frozenset({"failed", "cancelled"})
#: Before these, a job has no metrics or checkpoints worth a request.
_NOT_STARTED = frozenset({"validating_files", "queued"})
_PAGE_SIZE = 100
#: Pages read per listing (jobs, events, checkpoints): every loop over the API is bounded.
_MAX_PAGES = 20


def alternatives(run: str | None = None) -> str:
    """The backends that keep working without OpenAI's fine-tuning, as commands to run."""
    run = "--source stored" if run == "stored-completions" else run or "RUN"
    return (
        "Train without it: on this machine with Hugging Face TRL, `modelopt distill "
        f"{run} --student LOCAL_MODEL --backend local` (pip install "
        "'pytest-modelopt[train]'); or for another provider, `modelopt distill "
        f"{run} --student MODEL --backend export`, which writes the set for "
        "OpenAI-compatible services such as Together AI, for TRL and for axolotl, then "
        "`modelopt jobs register DIR MODEL` once a model is trained from it."
    )


class OpenAIBackend:
    """Fine-tuning jobs on OpenAI (or a compatible ``base_url``), through the sync SDK.

    ``api_key`` / ``base_url`` default to ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` as in the
    SDK. The key is never written to job.json and is redacted from every message.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        clock: Callable[[], dt.date] = utc_today,
        platform: bool | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._sdk: OpenAI | None = None
        #: whether OpenAI's platform dates bind this backend; None: from the URL it calls
        self.platform = (
            on_openai_platform(base_url or os.environ.get("OPENAI_BASE_URL"))
            if platform is None
            else platform
        )
        self.deadlines = Deadlines(clock=clock)

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r})"

    # -- the Backend protocol ------------------------------------------------------------

    def notices(self, manifest: Manifest) -> list[str]:
        """What a launch states first: when OpenAI stops creating jobs, and when the base
        model's family is shut down (none off OpenAI's platform)."""
        return self.deadlines.notices(manifest.base_model) if self.platform else []

    def refusal(self, manifest: Manifest) -> str | None:
        """Why OpenAI's platform cannot take this launch today, with what to run instead."""
        reason = self.deadlines.refusal(manifest.base_model) if self.platform else None
        if reason is None:
            return None
        return f"{reason}: not launched. {alternatives(manifest.source_run)}"

    def launch(self, manifest: Manifest, launch_dir: Path) -> JobInfo:
        """Find the job already created for this data and base model, or upload and create it."""
        refused = self.refusal(manifest)
        if refused is not None:  # before any request: nothing is uploaded
            raise BackendError(refused)
        launch_dir = Path(launch_dir).resolve()  # job.json's launch_dir must survive a chdir
        paths = _dataset_files(manifest, launch_dir)
        sha = _dataset_sha256(manifest, paths)
        method = _method(manifest, launch_dir)
        existing = self._existing(manifest, sha, launch_dir)
        if existing is not None:
            write_job(launch_dir, existing)
            return existing
        uploaded: list[str] = []
        training_file = self._upload(paths[0], manifest.name)
        uploaded.append(training_file)
        validation_file = None
        if manifest.validation_file:
            try:
                validation_file = self._upload(launch_dir / manifest.validation_file, manifest.name)
            except BackendError:
                self._delete_files(uploaded)  # no job will use the training file either
                raise
            uploaded.append(validation_file)
        params: dict[str, Any] = {
            "model": manifest.base_model,
            "training_file": training_file,
            "method": method,
            "metadata": _metadata(manifest, sha),
            "seed": _seed(manifest, sha),
        }
        if validation_file is not None:
            params["validation_file"] = validation_file
        suffix = _suffix(manifest.name)
        if suffix:
            params["suffix"] = suffix
        raw = self._create(params, manifest, sha, uploaded)
        job = self._complete(_new_job(raw, manifest, sha, launch_dir), raw)
        write_job(launch_dir, job)
        return job

    def refresh(self, job: JobInfo) -> JobInfo:
        """The job as the API reports it now, with its last metrics and its checkpoints."""
        _check_backend(job)
        raw = self._retrieve(job.id)
        if raw is None:
            raise BackendError(
                f"fine-tuning job {job.id} was not found: it was created with another API key, "
                "project or server; check OPENAI_API_KEY and OPENAI_BASE_URL"
            )
        return self._complete(job, raw)

    def events(self, job: JobInfo, after: str | None = None) -> list[JobEvent]:
        """Events newer than the event id ``after``, oldest first (the API lists newest first)."""
        _check_backend(job)
        client = self._client()
        doing = f"reading the events of fine-tuning job {job.id}"
        newest_first: list[dict[str, Any]] = []
        try:
            for item in _pages(client.fine_tuning.jobs.list_events(job.id, limit=_PAGE_SIZE)):
                if after is not None and item.get("id") == after:
                    break
                newest_first.append(item)
        except BackendError:
            raise
        except Exception as exc:
            raise self._error(exc, doing) from None
        return [self._event(item) for item in reversed(newest_first)]

    def cancel(self, job: JobInfo) -> JobInfo:
        """Cancel the job (OpenAI bills the steps already trained); job.json is updated."""
        _check_backend(job)
        try:
            raw = sdk_data(self._client().fine_tuning.jobs.cancel(job.id))
        except Exception as exc:
            raise self._error(exc, f"cancelling fine-tuning job {job.id}") from None
        cancelled = self._apply(job, raw)
        if cancelled.launch_dir:
            write_job(Path(cancelled.launch_dir), cancelled)
        return cancelled

    # -- talking to the API ------------------------------------------------------------

    def _client(self) -> OpenAI:
        if self._sdk is None:
            from openai import (  # openai: only when the fine-tuning API is called
                OpenAI,
                OpenAIError,
            )

            try:
                self._sdk = OpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
            except OpenAIError:
                raise BackendError(
                    "the openai backend has no API key: set OPENAI_API_KEY. " + alternatives()
                ) from None
        return self._sdk

    def _secrets(self) -> tuple[str, ...]:
        key = self._sdk.api_key if self._sdk is not None else self._api_key
        # A placeholder such as "x" or " " (key-less local servers) is no secret, and
        # replacing it everywhere would shred the message.
        return (key,) if key and len(key.strip()) >= 8 else ()

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def _error(
        self, exc: Exception, doing: str, *, creating: bool = False, tuning: bool = True
    ) -> BackendError:
        """One message for an SDK failure: what failed, the status and why, what to do.

        ``tuning``: a fine-tuning endpoint, where a 403, or a 401 for missing permissions
        (a restricted key's "Missing scopes"), means no fine-tuning for this organisation
        or key. ``creating``: the call lists or creates jobs, where a 404 means the same,
        or a server without the API.
        """
        failure = classify(exc)
        why = self._redact(failure.message).rstrip(". ")
        status = failure.status
        permissions = (
            status == 401
            and _error_code(exc) != "invalid_api_key"
            and ("permission" in why.lower() or "scope" in why.lower())
        )
        no_access = tuning and (status == 403 or permissions or (creating and status == 404))
        if no_access:
            where = (
                "this server has no fine-tuning API"
                if status == 404
                else "OpenAI fine-tuning is not available to this organization or API key"
            )
            return BackendError(
                f"{doing} failed: {where} ({why}). OpenAI is winding down self-serve "
                "fine-tuning: organizations new to it cannot create jobs since "
                f"{NEW_ORGANISATIONS_CUT_OFF.isoformat()}, and no one can from "
                f"{JOB_CREATION_ENDS.isoformat()}. " + alternatives()
            )
        if failure.retryable:
            return BackendError(
                f"{doing} failed ({failure.kind}): {why}; try again later", retryable=True
            )
        if status == 404:
            return BackendError(
                f"{doing} failed: {why}: it was created with another API key, project or "
                "server; check OPENAI_API_KEY and OPENAI_BASE_URL"
            )
        return BackendError(f"{doing} failed: {why}")

    def _retrieve(self, job_id: str) -> dict[str, Any] | None:
        """The job object, or None when this key and server do not know it (404)."""
        try:
            return sdk_data(self._client().fine_tuning.jobs.retrieve(job_id))
        except Exception as exc:
            if classify(exc).status == 404:
                return None
            raise self._error(exc, f"reading fine-tuning job {job_id}") from None

    def _list_jobs(self, sha: str) -> Iterator[dict[str, Any]]:
        """Jobs tagged with this dataset hash, newest first (filtered here too, for a
        server that ignores the ``metadata`` filter)."""
        client = self._client()
        try:
            page = client.fine_tuning.jobs.list(metadata={META_SHA256: sha}, limit=_PAGE_SIZE)
            for item in _pages(page):
                if (item.get("metadata") or {}).get(META_SHA256) == sha:
                    yield item
        except BackendError:
            raise
        except Exception as exc:
            raise self._error(exc, "listing fine-tuning jobs", creating=True) from None

    def _existing(self, manifest: Manifest, sha: str, launch_dir: Path) -> JobInfo | None:
        """The live job already launched for this dataset and base model, if any."""
        prior = None
        with contextlib.suppress(ValueError):  # a torn or foreign job.json is no job
            prior = read_job(launch_dir)
        if (
            prior is not None
            and prior.backend == self.name
            and prior.dataset_sha256 == sha
            and prior.base_model == manifest.base_model
        ):
            raw = self._retrieve(prior.id)
            if raw is not None and str(raw.get("status")) not in _GONE:
                return self._complete(prior.model_copy(update={"launch_dir": str(launch_dir)}), raw)
        for raw in self._list_jobs(sha):
            if _same_launch(raw, manifest) and str(raw.get("status")) not in _GONE:
                return self._complete(_new_job(raw, manifest, sha, launch_dir), raw)
        return None

    def _upload(self, path: Path, name: str) -> str:
        # Uploads may be retried by the SDK: a duplicate file costs nothing but storage.
        filename = f"{_slug(name)}-{path.stem}.jsonl"
        try:
            uploaded = self._client().files.create(
                file=(filename, path.read_bytes(), "application/jsonl"), purpose="fine-tune"
            )
        except Exception as exc:
            raise self._error(exc, f"uploading {path.name}", tuning=False) from None
        return uploaded.id

    def _create(
        self, params: dict[str, Any], manifest: Manifest, sha: str, uploaded: list[str]
    ) -> dict[str, Any]:
        """Create the job. Never blindly retried: an answer lost on the way would mean two
        paid jobs, so before each retry the job is looked for by its metadata."""
        client = self._client().with_options(max_retries=0)
        attempt = 0
        while True:
            try:
                return sdk_data(client.fine_tuning.jobs.create(**params))
            except Exception as exc:
                failure = classify(exc)
                if not failure.retryable or attempt >= self.max_retries:
                    error = self._error(exc, "creating the fine-tuning job", creating=True)
                    if not failure.retryable:  # no job uses them: do not leave them stored
                        self._delete_files(uploaded)
                    raise error from None
            for raw in self._list_jobs(sha):
                if _same_launch(raw, manifest) and str(raw.get("status")) not in _GONE:
                    return raw
            time.sleep(backoff(attempt, failure.retry_after))
            attempt += 1

    def _delete_files(self, file_ids: list[str]) -> None:
        files = self._client().files
        for file_id in file_ids:
            with contextlib.suppress(Exception):
                files.delete(file_id)

    def _complete(self, job: JobInfo, raw: dict[str, Any]) -> JobInfo:
        """``raw`` applied to ``job``, plus the last metrics and the checkpoints."""
        info = self._apply(job, raw)
        if info.status in _NOT_STARTED:
            return info
        update: dict[str, Any] = {}
        metrics = self._last_metrics(info.id)
        if metrics:
            update["metrics"] = metrics
        checkpoints = self._checkpoints(info.id)
        if checkpoints is not None:
            update["checkpoints"] = checkpoints
        return info.model_copy(update=update)

    def _apply(self, job: JobInfo, raw: dict[str, Any]) -> JobInfo:
        model = raw.get("fine_tuned_model") or None
        finished = raw.get("finished_at")
        error = raw.get("error")
        message = None
        if isinstance(error, dict) and (error.get("message") or error.get("code")):
            code, text = error.get("code"), error.get("message") or ""
            message = self._redact(f"{code}: {text}" if code else str(text))
        return job.model_copy(
            update={
                "status": str(raw.get("status") or job.status),
                "fine_tuned_model": str(model) if model else None,
                "created_at": float(raw.get("created_at") or job.created_at),
                "finished_at": float(finished) if finished else None,
                "error": message,
                "serve_hint": f"pytest --eval-models {model}" if model else None,
            }
        )

    def _last_metrics(self, job_id: str) -> dict[str, float]:
        """Numbers of the newest metrics event ({} when there is none, or no events API)."""
        try:
            page = self._client().fine_tuning.jobs.list_events(job_id, limit=_PAGE_SIZE)
        except Exception as exc:
            if classify(exc).status in (404, 405, 501):
                return {}
            raise self._error(exc, f"reading the events of fine-tuning job {job_id}") from None
        for event in page.data:
            item = sdk_data(event)
            data = item.get("data")
            if isinstance(data, dict) and (item.get("type") == "metrics" or "step" in data):
                return _numbers(data)
        return {}

    def _checkpoints(self, job_id: str) -> list[str] | None:
        """Checkpoint model names, oldest step first; None when the server has none to list."""
        doing = f"reading the checkpoints of fine-tuning job {job_id}"
        try:
            page = self._client().fine_tuning.jobs.checkpoints.list(job_id, limit=_PAGE_SIZE)
            items = list(_pages(page))
        except BackendError:
            raise
        except Exception as exc:
            if classify(exc).status in (404, 405, 501):
                return None
            raise self._error(exc, doing) from None
        items.sort(key=lambda item: int(item.get("step_number") or 0))
        return [
            str(item["fine_tuned_model_checkpoint"])
            for item in items
            if item.get("fine_tuned_model_checkpoint")
        ]

    def _event(self, item: dict[str, Any]) -> JobEvent:
        data = item.get("data")
        return JobEvent(
            id=str(item["id"]) if item.get("id") else None,
            created_at=float(item.get("created_at") or 0),
            level=str(item.get("level") or "info"),
            message=self._redact(str(item.get("message") or "")),
            data=data if isinstance(data, dict) and data else None,
        )


# -- helpers -----------------------------------------------------------------------------


def _check_backend(job: JobInfo) -> None:
    if job.backend != OpenAIBackend.name:
        raise BackendError(
            f"job {job.id} belongs to the {job.backend!r} backend, not 'openai': "
            f"use --backend {job.backend}"
        )


def _pages(page: Any) -> Iterator[dict[str, Any]]:
    """The items of a cursor page and the pages after it, at most ``_MAX_PAGES`` pages."""
    for _ in range(_MAX_PAGES):
        for item in page.data or []:
            yield sdk_data(item)
        if not page.has_next_page():
            return
        page = page.get_next_page()


def _error_code(exc: Exception) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])
    return None


def _numbers(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics event; one nested level (RFT ``scores.*``) flattened."""
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix + key] = float(value)
        elif isinstance(value, dict) and not prefix:
            out.update(_numbers(value, f"{key}."))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "modelopt"


def _suffix(name: str) -> str | None:
    """The job's suffix (part of the model's name): OpenAI takes 1-64 characters."""
    suffix = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:64].strip("-")
    return suffix or None


def _metadata(manifest: Manifest, sha: str) -> dict[str, str]:
    # OpenAI's limits: keys <= 64 characters, values <= 512.
    return {
        META_SHA256: sha[:64],
        META_NAME: manifest.name[:512],
        META_BASE_MODEL: manifest.base_model[:512],
    }


def _seed(manifest: Manifest, sha: str) -> int:
    """``hyperparameters.seed`` when given, else one derived from the data: same data,
    same seed, so a relaunch after a failure trains the same way."""
    seed = manifest.hyperparameters.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 2_147_483_647:
        return seed
    return int(sha[:8], 16) % 2_147_483_648


def _same_launch(raw: Mapping[str, Any], manifest: Manifest) -> bool:
    """Whether a listed job (already tagged with the hash) trains the same base model
    the same way."""
    metadata = raw.get("metadata") or {}
    base = metadata.get(META_BASE_MODEL) or raw.get("model")
    method = raw.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    return base == manifest.base_model and kind in (None, OPENAI_METHOD[manifest.method])


def _new_job(raw: Mapping[str, Any], manifest: Manifest, sha: str, launch_dir: Path) -> JobInfo:
    return JobInfo(
        backend=OpenAIBackend.name,
        id=str(raw["id"]),
        status=str(raw.get("status") or "validating_files"),
        base_model=manifest.base_model,
        method=manifest.method,
        dataset_sha256=sha,
        launch_dir=str(launch_dir),
    )


def _dataset_files(manifest: Manifest, launch_dir: Path) -> list[Path]:
    """The files the job trains on, in the order ``dataset_sha256`` hashes them."""
    names = [manifest.train_file, manifest.validation_file, manifest.grader_file]
    paths = [launch_dir / name for name in names if name]
    for path in paths:
        if not path.is_file():
            raise BackendError(
                f"{path} is missing: build the launch directory again "
                "(modelopt distill ... --dry-run writes it)"
            )
    return paths


def _dataset_sha256(manifest: Manifest, paths: list[Path]) -> str:
    """The idempotency key; a manifest whose hash no longer matches its files is refused,
    or an edited training set would be mistaken for the job of the old one."""
    actual = files_sha256(paths)
    if manifest.dataset_sha256 and manifest.dataset_sha256 != actual:
        names = ", ".join(path.name for path in paths)
        raise BackendError(
            f"the files in {paths[0].parent} ({names}) changed after manifest.json was "
            "written (dataset_sha256 differs): build the launch directory again"
        )
    return actual


def _method(manifest: Manifest, launch_dir: Path) -> dict[str, Any]:
    """``method`` for jobs.create: the type, its hyperparameters and, for RFT, the grader."""
    kind = OPENAI_METHOD[manifest.method]
    settings: dict[str, Any] = {}
    hyperparameters = {k: v for k, v in manifest.hyperparameters.items() if k != "seed"}
    if hyperparameters:
        settings["hyperparameters"] = hyperparameters
    if manifest.method == "rft":
        if not manifest.grader_file:
            raise BackendError(
                "an rft launch needs grader.json (the eval's graders as OpenAI grader JSON): "
                "the manifest names no grader_file"
            )
        path = launch_dir / manifest.grader_file
        try:
            grader = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BackendError(f"{path} is not JSON ({exc}): build it again") from None
        if not isinstance(grader, dict) or not isinstance(grader.get("type"), str):
            raise BackendError(f"{path} is not an OpenAI grader (an object with a 'type')")
        settings["grader"] = grader
        if manifest.response_format:
            # In the RFT guide, not in the spec or the SDK's types: it passes through as is.
            settings["response_format"] = manifest.response_format
    return {"type": kind, kind: settings}
