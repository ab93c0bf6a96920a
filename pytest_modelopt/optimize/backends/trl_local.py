"""The ``local`` backend: fine-tune on this machine with Hugging Face TRL, no API, no hub.

SFT runs ``trl.SFTTrainer``, DPO ``trl.DPOTrainer`` and RFT ``trl.GRPOTrainer`` with the
eval's own graders (``grader.json``) as the reward, optionally through a LoRA adapter (peft)
that is merged back so the result loads like any model. Training runs in a child process
(``python -m pytest_modelopt.optimize.backends.trl_local LAUNCH_DIR``) in its own session,
so a crash or a Ctrl-C of the caller leaves the job running and its state whole, and any
later process can follow it through the files it writes under its work directory
(``LAUNCH_DIR/local/`` by default)::

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

from ...local_model import LOCAL_MODEL, LocalModelError, find_gguf
from ...records import write_json_atomic
from ..base import (
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

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

INSTALL_HINT = "pip install 'pytest-modelopt[train]'"
WORK_DIR = "local"
# What the child imports; peft only with LoRA, gguf only for a GGUF base model.
REQUIRED_MODULES = ("torch", "transformers", "trl", "datasets", "accelerate")
# Learning rates that OpenAI's ``learning_rate_multiplier`` scales; LoRA takes 10x these.
BASE_LEARNING_RATE = {"sft": 2e-5, "dpo": 1e-6, "rft": 1e-6}
DEFAULT_EPOCHS = {"sft": 3, "dpo": 1, "rft": 1}
DEFAULT_BATCH_SIZE = {"sft": 4, "dpo": 2, "rft": 2}
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
            return b"trl_local" in proc.joinpath("cmdline").read_bytes()
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
                    "pytest_modelopt.optimize.backends.trl_local",
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
        config = _read_config(work)
        status = _read_status(work)
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
                status = _read_status(work) or status  # it may have finished meanwhile
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
        status = _read_status(work)
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
        status = _read_status(work) or RunStatus(status="cancelled")
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


# -- the parent's helpers -------------------------------------------------------------


def _dataset_hash(manifest: Manifest, launch_dir: Path) -> str:
    if manifest.dataset_sha256:
        return manifest.dataset_sha256
    names = [manifest.train_file, manifest.validation_file, manifest.grader_file]
    return files_sha256([launch_dir / n for n in names if n])


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
    config = _read_config(work)
    if config is None or config.dataset_sha256 != sha or _read_status(work) is None:
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


def _read_config(work: Path) -> RunConfig | None:
    path = work / "config.json"
    return RunConfig.model_validate_json(path.read_bytes()) if path.is_file() else None


def _read_status(work: Path) -> RunStatus | None:
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


# -- the child: data ------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _text(content: Any) -> str:
    """A message's content as text (OpenAI allows a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """A message in the shape chat templates read: ``weight`` and nulls dropped, and
    OpenAI's ``developer`` role as the ``system`` role that open models' templates know."""
    role = "system" if message["role"] == "developer" else message["role"]
    out: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
    for key in ("tool_calls", "tool_call_id", "name"):
        if message.get(key):
            out[key] = message[key]
    return out


def _with_tools(out: dict[str, Any], tools: Any) -> dict[str, Any]:
    """TRL reads ``tools`` as a JSON string too, which keeps one Arrow schema for any tools."""
    if tools:
        out["tools"] = json.dumps(tools)
    return out


def sft_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, list[str]]:
    """Our SFT rows in TRL's form: (rows, "prompt_completion" | "messages", warnings).

    When each example trains exactly one assistant turn, its last message, the rows become
    conversational prompt/completion pairs: TRL then takes the loss on the completion only,
    whatever the chat template. Otherwise they stay ``messages`` (assistant-only loss where
    the template allows it).
    """
    warnings: list[str] = []
    single = all(_trains_only_last(row["messages"]) for row in rows)
    out = []
    for row in rows:
        messages = row["messages"]
        if single:
            converted = {
                "prompt": [_message(m) for m in messages[:-1]],
                "completion": [_message(messages[-1])],
            }
        else:
            converted = {"messages": [_message(m) for m in messages]}
        out.append(_with_tools(converted, row.get("tools")))
    if not single and any(
        m.get("weight") == 0 for row in rows for m in row["messages"] if m["role"] == "assistant"
    ):
        warnings.append(
            "assistant turns with weight 0 are trained like the others (TRL has no per-turn weight)"
        )
    return out, "prompt_completion" if single else "messages", warnings


def _trains_only_last(messages: list[dict[str, Any]]) -> bool:
    if not messages or messages[-1].get("role") != "assistant" or messages[-1].get("weight") == 0:
        return False
    return all(m.get("weight") == 0 for m in messages[:-1] if m.get("role") == "assistant")


def dpo_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's input/preferred_output/non_preferred_output as TRL's prompt/chosen/rejected."""
    out = []
    for row in rows:
        source = row["input"]
        converted = {
            "prompt": [_message(m) for m in source["messages"]],
            "chosen": [_message(m) for m in row["preferred_output"]],
            "rejected": [_message(m) for m in row["non_preferred_output"]],
        }
        out.append(_with_tools(converted, source.get("tools")))
    return out


ITEM_COLUMN = "modelopt_item"


def rft_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt plus the case's fields as one JSON column, so any fields fit one schema."""
    out = []
    for row in rows:
        item = {k: v for k, v in row.items() if k not in ("messages", "tools")}
        out.append(
            {
                "prompt": [_message(m) for m in row["messages"]],
                ITEM_COLUMN: json.dumps(item, ensure_ascii=False),
            }
        )
    return out


def completion_text(completion: Any) -> str:
    """What the model said: GRPO hands a list of messages (conversational) or a string."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return _text(last.get("content"))
    return _text(completion)


def grader_reward(
    grader_data: dict[str, Any], on_error: Callable[[str], None] | None = None
) -> Callable[..., list[float]]:
    """The eval's grader as a GRPO reward: its score on each completion, the row as ``item``.

    An output the grader cannot grade scores 0, as in OpenAI's RFT; ``on_error`` hears why,
    so a grader that can never run here (a judge without a client) is not silently zero.
    """
    from ...graders.base import GraderError, from_openai

    grader = from_openai(grader_data)

    def reward(completions: list[Any], **kwargs: Any) -> list[float]:
        items = kwargs.get(ITEM_COLUMN) or [None] * len(completions)
        scores = []
        for completion, item_json in zip(completions, items, strict=True):
            item = json.loads(item_json) if item_json else {}
            try:
                scores.append(float(grader.grade(completion_text(completion), item).score))
            except GraderError as exc:
                scores.append(0.0)
                if on_error is not None:
                    on_error(str(exc))
        return scores

    reward.__name__ = grader.label.replace(" ", "_") or "grader"
    return reward


# -- the child: hyperparameters -------------------------------------------------------


def _hp(hyper: dict[str, Any], key: str, default: Any) -> Any:
    value = hyper.get(key, "auto")
    return default if value in (None, "auto") else value


def training_plan(manifest: Manifest, config: RunConfig, examples: int) -> dict[str, Any]:
    """OpenAI's hyperparameters as the TrainingArguments every TRL config shares."""
    hyper = manifest.hyperparameters
    method = manifest.method
    base_lr = BASE_LEARNING_RATE[method] * (10 if config.lora else 1)
    learning_rate = float(
        hyper.get("learning_rate") or base_lr * float(_hp(hyper, "learning_rate_multiplier", 1.0))
    )
    batch = int(_hp(hyper, "batch_size", min(DEFAULT_BATCH_SIZE[method], max(examples, 1))))
    on_cpu = config.device == "cpu"
    plan: dict[str, Any] = {
        "output_dir": str(Path(config.work_dir) / "trainer"),
        "num_train_epochs": float(_hp(hyper, "n_epochs", DEFAULT_EPOCHS[method])),
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch,
        "per_device_eval_batch_size": batch,
        "gradient_accumulation_steps": 1,
        "max_steps": config.max_steps if config.max_steps else -1,
        "seed": int(_hp(hyper, "seed", 0)),
        "data_seed": int(_hp(hyper, "seed", 0)),
        "logging_steps": 1,
        "logging_first_step": True,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": on_cpu,
        "bf16": False if on_cpu else None,
        "fp16": False,
        "activation_checkpointing": not on_cpu,  # gradient_checkpointing before transformers 5.2x
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
    }
    if plan["bf16"] is None:
        del plan["bf16"]
    return plan


# -- the child: training --------------------------------------------------------------


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


class _Recorder:
    """The child's side of the files: events appended, status replaced atomically."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.status = _read_status(work) or RunStatus(status="queued", created_at=time.time())
        events = work / "events.jsonl"  # an id is a line number: count lines, not parsed events
        self.seq = len(events.read_bytes().splitlines()) if events.is_file() else 0

    def event(self, message: str, data: dict[str, Any] | None = None, level: str = "info") -> None:
        self.seq += 1
        event = JobEvent(
            created_at=time.time(), id=str(self.seq), level=level, message=message, data=data
        )
        with (self.work / "events.jsonl").open("a", encoding="utf-8") as out:
            out.write(event.model_dump_json() + "\n")

    def once(self, level: str, limit: int = 5) -> Callable[[str], None]:
        """An event per distinct message, at most ``limit`` of them: for per-sample errors."""
        seen: set[str] = set()

        def report(message: str) -> None:
            if message not in seen and len(seen) < limit:
                seen.add(message)
                self.event(message, level=level)

        return report

    def set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        write_json_atomic(self.work / "status.json", self.status)


def _log_data(logs: dict[str, Any], step: int, total: int) -> dict[str, Any]:
    data: dict[str, Any] = {"step": step, "total_steps": total}
    for key, value in logs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # the Trainer's closing log calls the run's mean loss "train_loss"
            data["train_loss_mean" if key == "train_loss" else key] = float(value)
    if "loss" in data:
        data["train_loss"] = data["loss"]
    if "eval_loss" in data:
        data["valid_loss"] = data["eval_loss"]
    if "reward" in data:
        data["train_reward_mean"] = data["reward"]
    return data


def _log_message(data: dict[str, Any]) -> str:
    parts = [f"step {data['step']}/{data['total_steps']}"]
    for key in ("loss", "eval_loss", "reward", "train_runtime"):
        if key in data:
            parts.append(f"{key} {data[key]:.4f}")
    return ", ".join(parts)


def _events_callback(recorder: _Recorder) -> Any:
    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):  # type: ignore[misc]
        """Every log line of the trainer as a JobEvent, the last values as the job's metrics."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs:
                return
            data = _log_data(dict(logs), int(state.global_step), int(state.max_steps))
            recorder.event(_log_message(data), data)
            metrics = dict(recorder.status.metrics)
            for key in ("train_loss", "valid_loss", "train_reward_mean"):
                if key in data:
                    metrics[key] = data[key]
            metrics["step"] = float(data["step"])
            recorder.set(metrics=metrics)

    return EventsCallback()


def _load(config: RunConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    model_kwargs: dict[str, Any] = {}
    if config.gguf_file:
        kwargs["gguf_file"] = config.gguf_file
        # Training needs plain dense weights: unpack every GGUF block at load time.
        with contextlib.suppress(ImportError):
            from transformers import GgufConfig

            model_kwargs["quantization_config"] = GgufConfig(dequantize=True)
    tokenizer = AutoTokenizer.from_pretrained(config.model_dir, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        config.model_dir,
        dtype=torch.float32 if config.device == "cpu" else "auto",
        **kwargs,
        **model_kwargs,
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if config.gguf_file and quantizer is not None:
        # The weights are dense now; the GGUF marker left on the model would make the Trainer
        # refuse it ("does not support training") and save_pretrained refuse to write it.
        quantizer.remove_quantization_config(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            f"the tokenizer of {config.base_model!r} has no chat template; the training files "
            "are chat conversations"
        )
    if config.device != "cpu":
        model = model.to(config.device)
    return model, tokenizer


def _peft_config(manifest: Manifest) -> Any:
    from peft import LoraConfig

    hyper = manifest.hyperparameters
    rank = int(_hp(hyper, "lora_r", 16))
    return LoraConfig(
        r=rank,
        lora_alpha=int(_hp(hyper, "lora_alpha", 2 * rank)),
        lora_dropout=float(_hp(hyper, "lora_dropout", 0.0)),
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def _trl_config(cls: Any, **kwargs: Any) -> Any:
    """A TRL config from the plan, the checkpointing flag spelt as this transformers has it."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    if "activation_checkpointing" in kwargs and "activation_checkpointing" not in names:
        kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
    return cls(**kwargs)


def _supports_assistant_mask(tokenizer: Any) -> bool:
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        return False
    return True


def _build_trainer(
    manifest: Manifest, config: RunConfig, recorder: _Recorder, model: Any, tokenizer: Any
) -> Any:
    from datasets import Dataset

    launch_dir = Path(config.launch_dir)
    train = _read_jsonl(launch_dir / manifest.train_file)
    valid = _read_jsonl(launch_dir / manifest.validation_file) if manifest.validation_file else []
    plan = training_plan(manifest, config, len(train))
    common: dict[str, Any] = {
        "processing_class": tokenizer,
        "callbacks": [_events_callback(recorder)],
        "peft_config": _peft_config(manifest) if config.lora else None,
    }
    hyper = manifest.hyperparameters
    max_length = _hp(hyper, "max_length", 1024)

    if manifest.method == "sft":
        from trl import SFTConfig, SFTTrainer

        train_rows, mode, warnings = sft_rows(train)
        valid_rows = sft_rows(valid)[0] if valid else []
        for warning in warnings:
            recorder.event(warning, level="warn")
        assistant_only = mode == "messages" and _supports_assistant_mask(tokenizer)
        if mode == "messages" and not assistant_only:
            recorder.event(
                "the chat template has no {% generation %} markers: the loss covers the whole "
                "conversation, not only the assistant turns",
                level="warn",
            )
        args = _trl_config(
            SFTConfig,
            **plan,
            max_length=max_length,
            assistant_only_loss=assistant_only,
            eval_strategy="epoch" if valid_rows else "no",
        )
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(valid_rows) if valid_rows else None,
            **common,
        )
    if manifest.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        valid_rows = dpo_rows(valid) if valid else []
        args = _trl_config(
            DPOConfig,
            **plan,
            beta=float(_hp(hyper, "beta", 0.1)),
            max_length=max_length,
            eval_strategy="epoch" if valid_rows else "no",
        )
        return DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(dpo_rows(train)),
            eval_dataset=Dataset.from_list(valid_rows) if valid_rows else None,
            **common,
        )
    from trl import GRPOConfig, GRPOTrainer

    assert manifest.grader_file is not None  # checked at launch
    grader = json.loads((launch_dir / manifest.grader_file).read_text(encoding="utf-8"))
    generations = int(_hp(hyper, "num_generations", 4))
    prompts_per_step = plan.pop("per_device_train_batch_size")
    plan["per_device_eval_batch_size"] = prompts_per_step * generations
    args = _trl_config(
        GRPOConfig,
        **plan,
        per_device_train_batch_size=prompts_per_step * generations,  # completions per step
        num_generations=generations,
        max_completion_length=int(_hp(hyper, "max_completion_length", 256)),
        temperature=float(_hp(hyper, "temperature", 1.0)),
        remove_unused_columns=False,  # the reward reads the case's fields
        eval_strategy="no",
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=[grader_reward(grader, on_error=recorder.once("warn"))],
        args=args,
        train_dataset=Dataset.from_list(rft_rows(train)),
        **common,
    )


def _save(trainer: Any, tokenizer: Any, manifest: Manifest, config: RunConfig) -> Path:
    """Full weights + tokenizer, LoRA merged in, moved into place only when complete."""
    work = Path(config.work_dir)
    partial, final = work / "model.partial", work / "model"
    for path in (partial, final):
        if path.exists():
            shutil.rmtree(path)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to("cpu")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    write_json_atomic(partial / "modelopt-manifest.json", manifest)
    os.replace(partial, final)
    return final


def run(launch_dir: Path, work: Path) -> int:
    """Train as config.json says; every outcome ends in status.json. The child's main."""
    recorder = _Recorder(work)
    recorder.set(status="running", pid=os.getpid(), started_at=time.time())

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        config = _read_config(work)
        if config is None:
            raise BackendError(f"{work}/config.json is missing")
        manifest = read_manifest(launch_dir)
        try:
            import transformers

            versions = _versions()
        except ImportError as exc:
            raise BackendError(f"{exc.name} is not installed: {INSTALL_HINT}") from None
        recorder.set(versions=versions)
        transformers.set_seed(int(_hp(manifest.hyperparameters, "seed", 0)))
        recorder.event(
            f"training {manifest.method} on {config.base_model} ("
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + ")",
            {"versions": versions, "lora": config.lora},
        )
        model, tokenizer = _load(config)
        trainer = _build_trainer(manifest, config, recorder, model, tokenizer)
        result = trainer.train()
        metrics = dict(recorder.status.metrics)
        if getattr(result, "training_loss", None) is not None:
            metrics["train_loss_mean"] = float(result.training_loss)
        path = _save(trainer, tokenizer, manifest, config)
        recorder.event(f"model written to {path}", {"model": str(path)})
        recorder.set(status="succeeded", finished_at=time.time(), metrics=metrics)
        return 0
    except KeyboardInterrupt:
        recorder.event("cancelled", level="warn")
        recorder.set(status="cancelled", finished_at=time.time())
        return 130
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        recorder.event(message, level="error")
        recorder.set(status="failed", finished_at=time.time(), error=message)
        raise


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="train one local fine-tuning job (the child)")
    parser.add_argument("launch_dir", type=Path)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    launch_dir = args.launch_dir.resolve()
    return run(launch_dir, (args.work_dir or launch_dir / WORK_DIR).resolve())


if __name__ == "__main__":
    sys.exit(main())
