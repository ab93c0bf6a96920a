"""The ``local`` backend's child process: the only code that imports torch and TRL.

Run as ``python -m pytest_modelopt.optimize.backends.local.trainer LAUNCH_DIR WORK_DIR``
by ``backend.py``; it trains, appends events, and writes its status and the model under
the work directory (see ``backend.py`` for the layout).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata as md
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....records.store import write_json_atomic
from ...jobs import (
    BackendError,
    JobEvent,
    Manifest,
    read_manifest,
)
from .backend import INSTALL_HINT, WORK_DIR, RunConfig, RunStatus, read_config, read_status
from .rows import dpo_rows, grader_reward, read_jsonl, rft_rows, sft_rows

if TYPE_CHECKING:
    from collections.abc import Callable


# Learning rates that OpenAI's ``learning_rate_multiplier`` scales; LoRA takes 10x these.
BASE_LEARNING_RATE = {"sft": 2e-5, "dpo": 1e-6, "rft": 1e-6}


DEFAULT_EPOCHS = {"sft": 3, "dpo": 1, "rft": 1}


DEFAULT_BATCH_SIZE = {"sft": 4, "dpo": 2, "rft": 2}


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


def _versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


class _Recorder:
    """The child's side of the files: events appended, status replaced atomically."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.status = read_status(work) or RunStatus(status="queued", created_at=time.time())
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
    from transformers import TrainerCallback  # training libraries: only in the child process

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
    import torch  # training libraries: only in the child process
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
    train = read_jsonl(launch_dir / manifest.train_file)
    valid = read_jsonl(launch_dir / manifest.validation_file) if manifest.validation_file else []
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
        config = read_config(work)
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
