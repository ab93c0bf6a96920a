"""The ``local`` backend, parent side: launch, follow and cancel a TRL training process.

SFT runs ``trl.SFTTrainer``, DPO ``trl.DPOTrainer`` and RFT ``trl.GRPOTrainer`` with the
eval's own graders (``grader.json``) as the reward, optionally through a LoRA adapter (peft)
that is merged back so the result loads like any model. Training runs in a child process
(``python -m pytest_modelopt.optimize.backends.local.trainer LAUNCH_DIR``, ``trainer.py``)
in its own session, so a crash or a Ctrl-C of the caller leaves the job running and its
state whole, and any later process can follow it through the files it writes under its
work directory (``LAUNCH_DIR/local/`` by default)::

    config.json    what the child was asked to do (backend options, resolved base model)
    status.json    queued | running | succeeded | failed | cancelled, metrics, error
    events.jsonl   one JobEvent per line (step, loss or reward), appended as it trains
    train.log      the child's stdout and stderr
    model/         the result: full weights + tokenizer (+ modelopt-manifest.json)

torch, transformers, trl, peft and datasets are imported only in the child and inside
functions: the plugin never pays for them, and without them a launch fails with one
message saying how to install them (``pip install 'pytest-modelopt[train]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ....images import image_urls
from ....model.local_server import LOCAL_MODEL, LocalModelError, find_gguf
from ....records.store import write_json_atomic
from ...jobs import (
    FINAL_STATUSES,
    BackendError,
    JobEvent,
    JobInfo,
    Manifest,
    files_sha256,
    read_job,
    read_manifest,
    write_job,
)
from ...validate import example_messages

if TYPE_CHECKING:
    from collections.abc import Iterator


INSTALL_HINT = "pip install 'pytest-modelopt[train]'"


WORK_DIR = "local"


# What the child imports; peft only with LoRA, gguf only for a GGUF base model.
REQUIRED_MODULES = ("torch", "transformers", "trl", "datasets", "accelerate")


CANCEL_GRACE_S = 10.0


SPAWN_GRACE_S = 30.0


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunConfig(_State):
    """What the parent hands the child: everything needed to train, resolved up front."""

    job_id: str
    launch_dir: str
    work_dir: str
    dataset_sha256: str
    base_model: str  # as the manifest names it
    model_dir: str  # resolved: a transformers directory, or the directory of the GGUF file
    gguf_file: str | None = None
    lora: bool = False
    max_steps: int | None = None
    device: str = "cpu"


class RunStatus(_State):
    """Written by the parent (queued) and then by the child only."""

    status: str
    pid: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


def job_id_for(dataset_sha256: str) -> str:
    return f"local-{dataset_sha256[:12]}"


def serve_hint(model_dir: Path, name: str) -> str:
    """How to put the checkpoint behind an OpenAI-compatible API for ``--eval-models``."""
    return (
        f"serve it as {name!r}: on a GPU `vllm serve {model_dir} --served-model-name {name} "
        f"--port 8000`; on this machine `python -m pytest_modelopt.optimize.serve_hf {model_dir} "
        f"--model-name {name} --port 8000` (or convert it to GGUF with llama.cpp's "
        "convert_hf_to_gguf.py and serve that with `python -m llama_cpp.server`); then "
        f"`OPENAI_BASE_URL=http://127.0.0.1:8000/v1 pytest --eval-models {name}`"
    )


def resolve_base_model(name: str) -> tuple[Path, str | None]:
    """The base model as (directory, GGUF file name or None); never a hub id."""
    if name == LOCAL_MODEL:
        try:
            path = find_gguf()
        except LocalModelError as exc:
            raise BackendError(f"base model {name!r}: {exc}") from None
        return path.parent, path.name
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve().parent, path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.resolve(), None
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path.resolve(), ggufs[0].name
    raise BackendError(
        f"base model {name!r} is not a local transformers directory (with config.json), a .gguf "
        f"file, or {LOCAL_MODEL!r}: the local backend trains only models on this disk and "
        "never downloads from a hub"
    )


def missing_modules(python: str | None, *, lora: bool, gguf: bool) -> list[str]:
    """The training libraries the child's interpreter lacks (found without importing them)."""
    wanted = [*REQUIRED_MODULES, *(["peft"] if lora else []), *(["gguf"] if gguf else [])]
    if python is None or Path(python).resolve() == Path(sys.executable).resolve():
        return [name for name in wanted if importlib.util.find_spec(name) is None]
    code = (
        "import importlib.util, sys; "
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    try:
        out = subprocess.run(
            [python, "-c", code, *wanted], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"cannot run the training interpreter {python!r}: {exc}") from None
    return out.split()


def _pid_alive(pid: int | None) -> bool:
    """The child still runs: not reaped, not a zombie, and still this module (pid reuse)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            return b"backends.local.trainer" in proc.joinpath("cmdline").read_bytes()
        except (OSError, IndexError):
            return True
    return True


class LocalBackend:
    """Fine-tunes with TRL in a child process; the checkpoint is the ``fine_tuned_model``."""

    name = "local"

    def __init__(
        self,
        *,
        output_root: Path | None = None,
        lora: bool = False,
        max_steps: int | None = None,
        device: str = "cpu",
        python: str | None = None,
    ) -> None:
        self.output_root = output_root
        self.lora = lora
        self.max_steps = max_steps
        self.device = device
        self.python = python
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- where things are -------------------------------------------------------------

    def work_dir(self, manifest: Manifest, launch_dir: Path) -> Path:
        if self.output_root is not None:
            return self.output_root / job_id_for(_dataset_hash(manifest, launch_dir))
        return launch_dir / WORK_DIR

    # -- Backend protocol -------------------------------------------------------------

    def launch(self, manifest: Manifest, launch_dir: Path) -> JobInfo:
        launch_dir = launch_dir.resolve()
        sha = _dataset_hash(manifest, launch_dir)
        job_id = job_id_for(sha)
        work = self.work_dir(manifest, launch_dir).resolve()
        existing = _existing_job(work, sha)
        if existing is not None:
            job = self.refresh(existing)
            if job.status not in ("failed", "cancelled"):
                return job
        _refuse_images(manifest, launch_dir)
        model_dir, gguf_file = resolve_base_model(manifest.base_model)
        missing = missing_modules(self.python, lora=self.lora, gguf=gguf_file is not None)
        if missing:
            raise BackendError(
                f"the local fine-tuning backend needs {', '.join(missing)}, which "
                f"{'this Python' if self.python is None else self.python} lacks: {INSTALL_HINT}"
            )
        _check_files(manifest, launch_dir)
        for stale in ("events.jsonl", "status.json", "model", "model.partial", "trainer"):
            path = work / stale
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        work.mkdir(parents=True, exist_ok=True)
        config = RunConfig(
            job_id=job_id,
            launch_dir=str(launch_dir),
            work_dir=str(work),
            dataset_sha256=sha,
            base_model=manifest.base_model,
            model_dir=str(model_dir),
            gguf_file=gguf_file,
            lora=self.lora,
            max_steps=self.max_steps,
            device=self.device,
        )
        write_json_atomic(work / "config.json", config)
        now = time.time()
        write_json_atomic(work / "status.json", RunStatus(status="queued", created_at=now))
        with open(work / "train.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    self.python or sys.executable,
                    "-m",
                    "pytest_modelopt.optimize.backends.local.trainer",
                    str(launch_dir),
                    "--work-dir",
                    str(work),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the caller's Ctrl-C does not reach the training
                env=_child_env(),
            )
        self._procs[job_id] = proc
        (work / "pid").write_text(f"{proc.pid}\n")
        job = self._job_from(config, RunStatus(status="queued", created_at=now, pid=proc.pid))
        write_job(launch_dir, job)
        return job

    def refresh(self, job: JobInfo) -> JobInfo:
        work = _work_of(job)
        config = read_config(work)
        status = read_status(work)
        if config is None or status is None:
            raise BackendError(f"job {job.id}: no local state under {work}")
        if status.status not in FINAL_STATUSES:
            pid = status.pid or _read_pid(work)
            proc = self._procs.get(job.id)
            if proc is not None:
                alive = proc.poll() is None
            elif pid is None:  # queued, and the launcher has not yet written the child's pid
                alive = time.time() - status.created_at < SPAWN_GRACE_S
            else:
                alive = _pid_alive(pid)
            if not alive:
                # The child died without a word (killed, out of memory): it is failed, say where.
                status = read_status(work) or status  # it may have finished meanwhile
                if status.status not in FINAL_STATUSES:
                    status.status = "failed"
                    status.finished_at = time.time()
                    status.error = f"the training process exited unexpectedly; see {work}/train.log"
                    write_json_atomic(work / "status.json", status)
        fresh = self._job_from(config, status)
        if job.launch_dir:
            write_job(Path(job.launch_dir), fresh)
        return fresh

    def events(self, job: JobInfo, after: str | None = None) -> list[JobEvent]:
        """Events after ``after``, the ``id`` of the last one seen (its line in events.jsonl)."""
        try:
            start = int(after) if after else 0
        except ValueError:
            raise BackendError(f"job {job.id}: {after!r} is not a local event id") from None
        return [event for seq, event in _read_events(_work_of(job)) if seq > start]

    def cancel(self, job: JobInfo) -> JobInfo:
        job = self.refresh(job)
        if job.done:
            return job
        work = _work_of(job)
        status = read_status(work)
        pid = (status.pid if status else None) or _read_pid(work)
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + CANCEL_GRACE_S
            while time.monotonic() < deadline and _pid_alive(pid):
                proc = self._procs.get(job.id)
                if proc is not None and proc.poll() is not None:
                    break
                time.sleep(0.1)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        status = read_status(work) or RunStatus(status="cancelled")
        if status.status not in FINAL_STATUSES:
            status.status = "cancelled"
            status.finished_at = time.time()
            write_json_atomic(work / "status.json", status)
        return self.refresh(job)

    def wait(self, job: JobInfo, *, timeout: float | None = None, poll: float = 0.5) -> JobInfo:
        """Block until the job is done (tests, ``modelopt jobs follow``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.refresh(job)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise BackendError(f"job {job.id} still {job.status} after {timeout:.0f}s")
            time.sleep(poll)

    def _job_from(self, config: RunConfig, status: RunStatus) -> JobInfo:
        work = Path(config.work_dir)
        model = work / "model"
        succeeded = status.status == "succeeded"
        return JobInfo(
            backend=self.name,
            id=config.job_id,
            status=status.status,
            base_model=config.base_model,
            method=_method_of(Path(config.launch_dir)),
            dataset_sha256=config.dataset_sha256,
            fine_tuned_model=str(model) if succeeded else None,
            checkpoint_dir=str(model),
            created_at=status.created_at,
            finished_at=status.finished_at,
            error=status.error,
            checkpoints=[str(model)] if succeeded else [],
            metrics=status.metrics,
            serve_hint=serve_hint(model, config.job_id) if succeeded else None,
            launch_dir=config.launch_dir,
        )


def _dataset_hash(manifest: Manifest, launch_dir: Path) -> str:
    if manifest.dataset_sha256:
        return manifest.dataset_sha256
    names = [manifest.train_file, manifest.validation_file, manifest.grader_file]
    return files_sha256([launch_dir / n for n in names if n])


def _refuse_images(manifest: Manifest, launch_dir: Path) -> None:
    """This backend trains text models (SmolLM2 and the like): an example with images would
    be learnt from its text alone, silently. So a set with images is refused, by line."""
    for name in (manifest.train_file, manifest.validation_file):
        path = launch_dir / name if name else None
        if path is None or not path.is_file():
            continue
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if "image_url" not in line:  # no image part can be on this line
                    continue
                with contextlib.suppress(ValueError):
                    if image_urls(example_messages(json.loads(line))):
                        raise BackendError(
                            f"{path}:{number}: the example has images, and the local backend "
                            "trains text models (it would learn from the text alone): "
                            "launch it with --backend openai, or --backend export for a "
                            "trainer of vision models"
                        )


def _check_files(manifest: Manifest, launch_dir: Path) -> None:
    needed = [manifest.train_file]
    if manifest.validation_file:
        needed.append(manifest.validation_file)
    if manifest.method == "rft":
        if not manifest.grader_file:
            raise BackendError("an rft launch needs grader_file (grader.json) in its manifest")
        needed.append(manifest.grader_file)
    for name in needed:
        if not (launch_dir / name).is_file():
            raise BackendError(f"{launch_dir / name} is missing")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",  # never a download: every file must already be on this disk
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def _work_of(job: JobInfo) -> Path:
    if job.checkpoint_dir:
        return Path(job.checkpoint_dir).parent
    if job.launch_dir:
        return Path(job.launch_dir) / WORK_DIR
    raise BackendError(f"job {job.id} has neither checkpoint_dir nor launch_dir")


def _existing_job(work: Path, sha: str) -> JobInfo | None:
    config = read_config(work)
    if config is None or config.dataset_sha256 != sha or read_status(work) is None:
        return None
    job = read_job(Path(config.launch_dir))
    if job is not None and job.id == config.job_id:
        return job
    return JobInfo(
        backend=LocalBackend.name,
        id=config.job_id,
        status="queued",
        base_model=config.base_model,
        method=_method_of(Path(config.launch_dir)),
        dataset_sha256=sha,
        checkpoint_dir=str(work / "model"),
        launch_dir=config.launch_dir,
    )


def _method_of(launch_dir: Path) -> Any:
    return read_manifest(launch_dir).method


def read_config(work: Path) -> RunConfig | None:
    path = work / "config.json"
    return RunConfig.model_validate_json(path.read_bytes()) if path.is_file() else None


def read_status(work: Path) -> RunStatus | None:
    path = work / "status.json"
    return RunStatus.model_validate_json(path.read_bytes()) if path.is_file() else None


def _read_pid(work: Path) -> int | None:
    try:
        return int((work / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _read_events(work: Path) -> Iterator[tuple[int, JobEvent]]:
    path = work / "events.jsonl"
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as lines:
        for seq, line in enumerate(lines, start=1):
            if not line.endswith("\n"):
                return  # the child is still writing this one
            try:
                event = JobEvent.model_validate_json(line)
            except ValueError:
                continue
            yield seq, event if event.id else event.model_copy(update={"id": str(seq)})
