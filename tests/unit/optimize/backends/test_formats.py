"""The ``export`` backend's other formats: Together AI, TRL and axolotl.

Each format's schema (``formats.SCHEMAS``) must accept the example its documentation
publishes, quoted below from the page cited beside it, and reject what the page rules out;
then a launch directory exported by the backend must hold files whose every line passes,
with the conversions (roles, weights, what is left out and why) checked line by line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from pytest_modelopt.optimize.backends.export import ExportBackend
from pytest_modelopt.optimize.backends.formats import check_file, check_line
from pytest_modelopt.optimize.jobs import Manifest, files_sha256, read_job

if TYPE_CHECKING:
    from pathlib import Path

# https://docs.together.ai/docs/fine-tuning/data-preparation ("Conversational data")
TOGETHER_CONVERSATION = {
    "messages": [
        {"role": "system", "content": "This is a system prompt."},
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing well, thank you! How can I help you?"},
        {"role": "user", "content": "Can you explain machine learning?"},
        {"role": "assistant", "content": "Machine learning is..."},
    ]
}
# the same page: per-message weights, 0 or 1
TOGETHER_WEIGHTS = {
    "messages": [
        {"role": "user", "content": "Question A", "weight": 0},
        {"role": "assistant", "content": "Answer A", "weight": 1},
    ]
}
# https://docs.together.ai/docs/fine-tuning/preference-tuning ("Prepare your data")
TOGETHER_PREFERENCE = {
    "input": {
        "messages": [
            {"role": "assistant", "content": "Hello, how can I assist you today?"},
            {"role": "user", "content": "Can you tell me about the rise of the Roman Empire?"},
        ]
    },
    "preferred_output": [
        {"role": "assistant", "content": "The Roman Empire rose from a small city-state..."}
    ],
    "non_preferred_output": [{"role": "assistant", "content": "The Roman Empire rose..."}],
}
# https://huggingface.co/docs/trl/dataset_formats (the table: conversational column)
TRL_LANGUAGE_MODELING = {
    "messages": [
        {"role": "user", "content": "What color is the sky?"},
        {"role": "assistant", "content": "It is blue."},
    ]
}
TRL_PROMPT_COMPLETION = {
    "prompt": [{"role": "user", "content": "What color is the sky?"}],
    "completion": [{"role": "assistant", "content": "It is blue."}],
}
TRL_PREFERENCE = {
    "prompt": [{"role": "user", "content": "What color is the sky?"}],
    "chosen": [{"role": "assistant", "content": "It is blue."}],
    "rejected": [{"role": "assistant", "content": "It is green."}],
}
# https://docs.axolotl.ai/docs/dataset-formats/conversation.html (data.jsonl, roles filled in)
AXOLOTL_CONVERSATION = {
    "messages": [
        {"role": "user", "content": "..."},
        {"role": "assistant", "content": "..."},
    ]
}
# https://docs.axolotl.ai/docs/rlhf.html, chat_template.default ("Sample input format")
AXOLOTL_PREFERENCE = {
    "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
    "chosen": {"role": "assistant", "content": "..."},
    "rejected": {"role": "assistant", "content": "..."},
}


@pytest.mark.parametrize(
    ("fmt", "method", "line"),
    [
        ("together", "sft", TOGETHER_CONVERSATION),
        ("together", "sft", TOGETHER_WEIGHTS),
        ("together", "dpo", TOGETHER_PREFERENCE),
        ("trl", "sft", TRL_LANGUAGE_MODELING),
        ("trl", "sft", TRL_PROMPT_COMPLETION),
        ("trl", "dpo", TRL_PREFERENCE),
        ("axolotl", "sft", AXOLOTL_CONVERSATION),
        ("axolotl", "dpo", AXOLOTL_PREFERENCE),
    ],
)
def test_each_schema_accepts_its_documented_example(
    fmt: str, method: str, line: dict[str, Any]
) -> None:
    assert check_line(fmt, method, line) is None


def _with(line: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(line))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("fmt", "method", "line", "why"),
    [
        pytest.param(
            "together",
            "sft",
            {**TOGETHER_CONVERSATION, "tools": []},
            "Additional properties",
            id="together-extra-column",
        ),
        pytest.param(
            "together",
            "sft",
            _with(TOGETHER_CONVERSATION, ("messages", 1, "role"), "tool"),
            "'tool' is not one of",
            id="together-role",
        ),
        pytest.param(
            "together",
            "sft",
            _with(TOGETHER_WEIGHTS, ("messages", 0, "weight"), 2),
            "2 is not one of [0, 1]",
            id="together-weight",
        ),
        pytest.param(
            "together",
            "sft",
            _with(TOGETHER_CONVERSATION, ("messages", 2, "content"), [{"type": "text"}]),
            "is not of type 'string'",
            id="together-content-parts",
        ),
        pytest.param(
            "together",
            "sft",
            _with(TOGETHER_CONVERSATION, ("messages", 2, "role"), "user"),
            "alternating",
            id="together-order",
        ),
        pytest.param(
            "together",
            "sft",
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
            "with an assistant answer",
            id="together-no-answer",
        ),
        pytest.param(
            "together",
            "dpo",
            _with(
                TOGETHER_PREFERENCE,
                ("preferred_output",),
                TOGETHER_PREFERENCE["preferred_output"] * 2,
            ),
            "is too long",
            id="together-two-answers",
        ),
        pytest.param(
            "together",
            "dpo",
            _with(TOGETHER_PREFERENCE, ("input", "messages", 0, "role"), "user"),
            "same role twice",
            id="together-dpo-repeat",
        ),
        pytest.param(
            "trl", "dpo", {"prompt": TRL_PREFERENCE["prompt"]}, "'chosen' is a required", id="trl"
        ),
        pytest.param(
            "axolotl",
            "dpo",
            _with(AXOLOTL_PREFERENCE, ("chosen",), [AXOLOTL_PREFERENCE["chosen"]]),
            "is not of type 'object'",
            id="axolotl-chosen-list",
        ),
    ],
)
def test_each_schema_rejects_what_its_page_rules_out(
    fmt: str, method: str, line: dict[str, Any], why: str
) -> None:
    problem = check_line(fmt, method, line)
    assert problem is not None
    assert why in problem


def test_a_written_file_is_checked_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps(TOGETHER_CONVERSATION) + "\nnot json\n" + json.dumps({"text": "x"}) + "\n"
    )
    problems = check_file("together", "sft", path)
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:2: not JSON")
    assert problems[1].startswith(f"{path}:3: ")


# -- the export backend ------------------------------------------------------------------

SYSTEM = {"role": "developer", "content": "Classify the ticket."}


def sft_example(i: int, answer: str = "bug") -> dict[str, Any]:
    return {
        "messages": [
            SYSTEM,
            {"role": "user", "content": f"ticket {i}: the app crashes", "name": "customer"},
            {"role": "assistant", "content": answer},
        ]
    }


IMAGE = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is broken?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "assistant", "content": "the screen"},
    ]
}
TOOL_CALL = {
    "messages": [
        {"role": "user", "content": "order 7?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"order": 7}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
}


def dpo_example(i: int) -> dict[str, Any]:
    return {
        "input": {"messages": [SYSTEM, {"role": "user", "content": f"ticket {i}: refund?"}]},
        "preferred_output": [{"role": "assistant", "content": "billing"}],
        "non_preferred_output": [{"role": "assistant", "content": "bug"}],
    }


def launch_dir(
    directory: Path,
    method: str,
    rows: list[dict[str, Any]],
    *,
    base_model: str = "gpt-4.1-mini-2025-04-14",
    validation: list[dict[str, Any]] | None = None,
) -> Manifest:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "train.jsonl"]
    paths[0].write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra: dict[str, Any] = {}
    if validation is not None:
        paths.append(directory / "validation.jsonl")
        paths[1].write_text("".join(json.dumps(r) + "\n" for r in validation))
        extra["validation_file"] = "validation.jsonl"
    manifest = Manifest(
        name=directory.name,
        method=method,  # type: ignore[arg-type]
        base_model=base_model,
        source_run="run-1",
        examples=len(rows),
        holdout_cases=["c98", "c99"],
        dataset_sha256=files_sha256(paths),
        **extra,
    )
    (directory / "manifest.json").write_text(manifest.model_dump_json())
    return manifest


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_an_sft_export_writes_every_format_and_says_what_it_left_out(tmp_path: Path) -> None:
    out = tmp_path / "sft-set"
    rows = [sft_example(i, "bug" if i % 2 else "billing") for i in range(10)] + [IMAGE, TOOL_CALL]
    manifest = launch_dir(out, "sft", rows, validation=[sft_example(50)])
    job = ExportBackend().launch(manifest, out)

    export = out / "export"
    for fmt in ("together", "trl", "axolotl"):
        for name in ("train.jsonl", "validation.jsonl"):
            assert check_file(fmt, "sft", export / fmt / name) == []
    together = lines(export / "together" / "train.jsonl")
    assert len(together) == 10  # the image and the tool call have no place in it
    assert together[0] == {
        "messages": [
            {"role": "system", "content": "Classify the ticket."},  # developer -> system
            {"role": "user", "content": "ticket 0: the app crashes"},  # name dropped
            {"role": "assistant", "content": "billing"},
        ]
    }
    assert lines(export / "axolotl" / "train.jsonl") == together  # the same messages
    trl = lines(export / "trl" / "train.jsonl")
    assert len(trl) == 11  # tool calls kept, the image left out
    # a tool call trains two assistant turns: the file is TRL's language-modeling type
    assert trl[0] == {
        "messages": [
            {"role": "system", "content": "Classify the ticket."},
            {"role": "user", "content": "ticket 0: the app crashes", "name": "customer"},
            {"role": "assistant", "content": "billing"},
        ]
    }
    assert json.loads(trl[-1]["tools"]) == TOOL_CALL["tools"]
    # one example answering once: prompt/completion, the loss on the completion only
    assert lines(export / "trl" / "validation.jsonl") == [
        {
            "prompt": [
                {"role": "system", "content": "Classify the ticket."},
                {"role": "user", "content": "ticket 50: the app crashes", "name": "customer"},
            ],
            "completion": [{"role": "assistant", "content": "bug"}],
        }
    ]

    readme = (export / "README.md").read_text("utf-8")
    assert "1 left out: non-text content (images, audio): this format is text only" in readme
    tools = "1 left out: tool definitions: this format has none (the trl export keeps them)"
    assert tools in readme
    assert f"modelopt jobs register {out} MODEL_NAME" in readme
    assert "2 held-out cases are in no file" in readme
    assert job.status == "exported"
    assert read_job(out) == job
    hint = job.serve_hint or ""
    assert f"use {export}: together/ (" in hint
    assert "axolotl/ (" in hint
    assert f"modelopt jobs register {out} MODEL_NAME" in hint


# The keys of the config stub with their types, from the config reference
# (https://docs.axolotl.ai/docs/config-reference.html) and, for a dataset entry, axolotl's
# SFTDataset model (src/axolotl/utils/schemas/datasets.py) plus chat_template.default's
# field_chosen / field_rejected (https://docs.axolotl.ai/docs/rlhf.html).
_STRINGS = {"type": "array", "items": {"type": "string"}}
AXOLOTL_DATASET = {
    "type": "object",
    "required": ["path", "type"],
    "properties": {
        "path": {"type": "string"},
        "ds_type": {"type": "string"},
        "type": {"type": "string"},
        "field_messages": {"type": "string"},
        "field_chosen": {"type": "string"},
        "field_rejected": {"type": "string"},
        "roles_to_train": _STRINGS,
        "train_on_eos": {"enum": ["all", "turn", "last"]},
        "message_field_training": {"type": "string"},
        "message_property_mappings": {
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "roles": {"type": "object", "additionalProperties": _STRINGS},
    },
    "additionalProperties": False,
}
AXOLOTL_CONFIG = {
    "type": "object",
    "required": ["base_model", "datasets", "output_dir"],
    "properties": {
        "base_model": {"type": "string"},
        "chat_template": {"type": "string"},
        "rl": {"enum": ["dpo", "ipo", "kto", "simpo", "orpo", "grpo"]},
        "datasets": {"type": "array", "minItems": 1, "items": AXOLOTL_DATASET},
        "test_datasets": {"type": "array", "minItems": 1, "items": AXOLOTL_DATASET},
        "val_set_size": {"type": "number"},
        "output_dir": {"type": "string"},
        "sequence_len": {"type": "integer"},
        "adapter": {"enum": ["lora", "qlora"]},
        "lora_r": {"type": "integer"},
        "lora_alpha": {"type": "integer"},
        "lora_dropout": {"type": "number"},
        "lora_target_linear": {"type": "boolean"},
        "micro_batch_size": {"type": "integer"},
        "gradient_accumulation_steps": {"type": "integer"},
        "num_epochs": {"type": "number"},
        "learning_rate": {"type": "number"},
        "optimizer": {"type": "string"},
        "lr_scheduler": {"type": "string"},
    },
    "additionalProperties": False,
    "not": {"required": ["test_datasets", "val_set_size"]},  # "either ..., but not both"
}
# axolotl's examples/llama-3/instruct-dpo-lora-8b.yml, the keys the schema knows
DOCUMENTED_DPO_CONFIG = """
base_model: meta-llama/Meta-Llama-3-8B-Instruct
chat_template: llama3
rl: dpo
datasets:
  - path: fozziethebeat/alpaca_messages_2k_dpo_test
    type: chat_template.default
    field_messages: conversation
    field_chosen: chosen
    field_rejected: rejected
    message_property_mappings:
      role: role
      content: content
    roles:
      system:
        - system
      user:
        - user
      assistant:
        - assistant
val_set_size: 0.05
output_dir: ./outputs/lora-out
sequence_len: 4096
adapter: lora
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
"""


def test_the_config_schema_accepts_axolotls_own_example() -> None:
    jsonschema.validate(yaml.safe_load(DOCUMENTED_DPO_CONFIG), AXOLOTL_CONFIG)


def test_the_axolotl_config_stub_names_the_files_and_the_method(tmp_path: Path) -> None:
    sft_dir, dpo_dir = tmp_path / "sft", tmp_path / "dpo"
    ExportBackend().launch(
        launch_dir(
            sft_dir, "sft", [sft_example(i) for i in range(10)], validation=[sft_example(50)]
        ),
        sft_dir,
    )
    ExportBackend().launch(
        launch_dir(
            dpo_dir, "dpo", [dpo_example(i) for i in range(10)], base_model="my-org/my-model"
        ),
        dpo_dir,
    )
    sft_text = (sft_dir / "export" / "axolotl" / "config.yaml").read_text("utf-8")
    assert sft_text.startswith("# axolotl config stub written by pytest-modelopt for sft")
    sft_config = yaml.safe_load(sft_text)
    dpo_config = yaml.safe_load((dpo_dir / "export" / "axolotl" / "config.yaml").read_text())
    for config in (sft_config, dpo_config):
        jsonschema.validate(config, AXOLOTL_CONFIG)
    assert sft_config["base_model"].startswith("CHANGE-ME")  # gpt-4.1-mini has no weights
    assert sft_config["datasets"] == [
        {
            "path": "train.jsonl",
            "ds_type": "json",
            "type": "chat_template",
            "field_messages": "messages",
            "roles_to_train": ["assistant"],
            "train_on_eos": "turn",
        }
    ]
    assert sft_config["test_datasets"][0]["path"] == "validation.jsonl"
    assert "rl" not in sft_config
    assert dpo_config["base_model"] == "my-org/my-model"
    assert dpo_config["rl"] == "dpo"
    assert dpo_config["val_set_size"] == 0
    (dataset,) = dpo_config["datasets"]
    assert dataset["type"] == "chat_template.default"
    assert (dataset["field_messages"], dataset["field_chosen"], dataset["field_rejected"]) == (
        "messages",
        "chosen",
        "rejected",
    )


def test_a_dpo_export_keeps_the_pairs_in_each_format(tmp_path: Path) -> None:
    rows = [dpo_example(i) for i in range(10)]
    manifest = launch_dir(tmp_path, "dpo", rows)
    ExportBackend().launch(manifest, tmp_path)
    export = tmp_path / "export"
    for fmt in ("together", "trl", "axolotl"):
        assert check_file(fmt, "dpo", export / fmt / "train.jsonl") == []
    system = {"role": "system", "content": "Classify the ticket."}
    user = {"role": "user", "content": "ticket 3: refund?"}
    assert lines(export / "together" / "train.jsonl")[3] == {
        "input": {"messages": [system, user]},
        "preferred_output": [{"role": "assistant", "content": "billing"}],
        "non_preferred_output": [{"role": "assistant", "content": "bug"}],
    }
    assert lines(export / "trl" / "train.jsonl")[3] == {
        "prompt": [system, user],
        "chosen": [{"role": "assistant", "content": "billing"}],
        "rejected": [{"role": "assistant", "content": "bug"}],
    }
    assert lines(export / "axolotl" / "train.jsonl")[3] == {
        "messages": [system, user],
        "chosen": {"role": "assistant", "content": "billing"},
        "rejected": {"role": "assistant", "content": "bug"},
    }


def test_weights_become_axolotls_per_turn_training_flag(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "draft", "weight": 0},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": "final", "weight": 1},
            ]
        }
        for i in range(10)
    ]
    ExportBackend().launch(launch_dir(tmp_path, "sft", rows), tmp_path)
    export = tmp_path / "export"
    assert lines(export / "together" / "train.jsonl")[0]["messages"][1]["weight"] == 0
    axolotl = lines(export / "axolotl" / "train.jsonl")[0]["messages"]
    assert [m.get("train") for m in axolotl] == [None, False, None, True]
    config = yaml.safe_load((export / "axolotl" / "config.yaml").read_text())
    assert config["datasets"][0]["message_field_training"] == "train"


def test_an_rft_export_writes_only_openais_format(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}], "label": "x"} for i in range(10)]
    manifest = launch_dir(tmp_path, "rft", rows)
    job = ExportBackend().launch(manifest, tmp_path)
    assert not (tmp_path / "export").exists()
    hint = job.serve_hint or ""
    assert "(OpenAI's format)" in hint
    assert "README.md" not in hint


def test_the_trl_files_are_what_trl_reads(tmp_path: Path) -> None:
    """TRL's own check of a conversational example, and one Arrow schema for the file."""
    data_utils = pytest.importorskip("trl.data_utils")
    datasets = pytest.importorskip("datasets")
    rows = [sft_example(i) for i in range(10)] + [TOOL_CALL]
    ExportBackend().launch(launch_dir(tmp_path / "sft", "sft", rows), tmp_path / "sft")
    ExportBackend().launch(
        launch_dir(tmp_path / "dpo", "dpo", [dpo_example(i) for i in range(10)]),
        tmp_path / "dpo",
    )
    for method in ("sft", "dpo"):
        path = tmp_path / method / "export" / "trl" / "train.jsonl"
        assert all(data_utils.is_conversational(row) for row in lines(path))
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        assert loaded.num_rows == len(lines(path))
