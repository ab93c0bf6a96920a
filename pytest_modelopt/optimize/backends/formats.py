"""A launch's training set in the formats other fine-tuning services and trainers read.

``train.jsonl`` is in OpenAI's format; the ``export`` backend also writes, under
``<launch dir>/export/``:

- ``together/``: Together AI's fine-tuning JSONL, a hosted OpenAI-compatible service.
  Conversational data (SFT) and preference data (DPO) as documented on
  https://docs.together.ai/docs/fine-tuning/data-preparation and
  https://docs.together.ai/docs/fine-tuning/preference-tuning, and as its client's
  ``check_file`` enforces (togethercomputer/together-python, src/together/utils/files.py):
  one format a file and no other key on a line; a message is ``role`` (system, user,
  assistant) and string ``content``, with an optional integer ``weight`` of 0 or 1; a
  conversation starts with system or user, then user and assistant alternate; each
  preference output is exactly one assistant message.
- ``trl/``: Hugging Face TRL's conversational dataset types
  (https://huggingface.co/docs/trl/dataset_formats): ``messages`` (language modeling) or
  ``prompt``/``completion`` for SFT, ``prompt``/``chosen``/``rejected`` for DPO; the same
  rows the ``local`` backend trains on (``local/rows.py``).
- ``axolotl/``: axolotl's ``chat_template`` dataset (``{"messages": [...]}``,
  https://docs.axolotl.ai/docs/dataset-formats/conversation.html) or, for DPO,
  ``chat_template.default`` (``messages`` plus one ``chosen`` and one ``rejected``
  message, https://docs.axolotl.ai/docs/rlhf.html), with ``config.yaml``, a config stub
  whose keys are those of https://docs.axolotl.ai/docs/config-reference.html.

Every line written is checked against its format's JSON Schema below (written from those
pages) before the export counts as done: a line that does not conform is an error, never a
file a provider rejects later. An example a format cannot say (tool calls, image parts in
a text-only format) is left out of that format and counted, with the reason.
RFT sets have no such format (their reward is ``grader.json``): train them with
``--backend local`` or on a service that reads OpenAI's format.
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..jobs import BackendError
from .local.rows import dpo_rows, read_jsonl, sft_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ..jobs import Manifest

EXPORT_DIR = "export"
FORMATS = ("together", "trl", "axolotl")
AXOLOTL_CONFIG = "config.yaml"

# -- schemas (JSON Schema 2020-12), written from the pages cited in the module docstring --


def _message(roles: Sequence[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": list(roles)},
            "content": {"type": "string"},
            **(extra or {}),
        },
        "additionalProperties": False,
    }


def _messages(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": item}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


_TOGETHER_MESSAGE = _message(
    ("system", "user", "assistant"), {"weight": {"type": "integer", "enum": [0, 1]}}
)
_TOGETHER_ANSWER = _message(("assistant",))
_ONE_ANSWER = {"type": "array", "minItems": 1, "maxItems": 1, "items": _TOGETHER_ANSWER}
_TRL_MESSAGE = _message(
    ("system", "user", "assistant", "tool"),
    {
        "tool_calls": {"type": "array"},
        "tool_call_id": {"type": "string"},
        "name": {"type": "string"},
    },
)
_TRL_TOOLS = {"tools": {"type": "string"}}  # a JSON string: one Arrow schema for any tools
_AXOLOTL_MESSAGE = _message(("system", "user", "assistant"), {"train": {"type": "boolean"}})
_AXOLOTL_ANSWER = _message(("assistant",))

SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("together", "sft"): _object({"messages": _messages(_TOGETHER_MESSAGE)}),
    ("together", "dpo"): _object(
        {
            "input": _object({"messages": _messages(_TOGETHER_MESSAGE)}),
            "preferred_output": _ONE_ANSWER,
            "non_preferred_output": _ONE_ANSWER,
        }
    ),
    ("trl", "sft"): {
        "oneOf": [
            _object({"messages": _messages(_TRL_MESSAGE)}, _TRL_TOOLS),
            _object(
                {"prompt": _messages(_TRL_MESSAGE), "completion": _messages(_TRL_MESSAGE)},
                _TRL_TOOLS,
            ),
        ]
    },
    ("trl", "dpo"): _object(
        {
            "prompt": _messages(_TRL_MESSAGE),
            "chosen": _messages(_TRL_MESSAGE),
            "rejected": _messages(_TRL_MESSAGE),
        },
        _TRL_TOOLS,
    ),
    ("axolotl", "sft"): _object({"messages": _messages(_AXOLOTL_MESSAGE)}),
    ("axolotl", "dpo"): _object(
        {
            "messages": _messages(_AXOLOTL_MESSAGE),
            "chosen": _AXOLOTL_ANSWER,
            "rejected": _AXOLOTL_ANSWER,
        }
    ),
}


def _alternates(roles: list[str]) -> bool:
    """Together AI's order: an optional system message, then user, assistant, user, ..."""
    if roles[:1] == ["system"]:
        roles = roles[1:]
    return bool(roles) and all(
        role == ("user" if index % 2 == 0 else "assistant") for index, role in enumerate(roles)
    )


def _no_repeats(roles: list[str]) -> bool:
    """The client's check of preference inputs: no role twice in a row."""
    return all(a != b for a, b in itertools.pairwise(roles))


def _order_issue(fmt: str, method: str, line: dict[str, Any]) -> str | None:
    """What JSON Schema cannot say: Together AI's turn order (its docs and ``check_file``)."""
    if fmt != "together":
        return None
    if method == "sft":
        roles = [m["role"] for m in line["messages"]]
        if not _alternates(roles) or "assistant" not in roles:
            return (
                "messages must be system (optional), then user and assistant alternating, "
                "with an assistant answer"
            )
        return None
    if not _no_repeats([m["role"] for m in line["input"]["messages"]]):
        return "input.messages has the same role twice in a row"
    return None


@functools.cache
def _validator(fmt: str, method: str) -> Any:
    """One compiled validator a format and method, for every line of every file."""
    import jsonschema  # ~30 ms to import: only when a set is exported or checked

    return jsonschema.Draft202012Validator(SCHEMAS[(fmt, method)])


def check_line(fmt: str, method: str, line: Any) -> str | None:
    """Why one line does not conform to its format (None when it does)."""
    errors = sorted(_validator(fmt, method).iter_errors(line), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.absolute_path) or "the line"
        return f"{where}: {error.message}"
    return _order_issue(fmt, method, line)


def check_file(fmt: str, method: str, path: Path) -> list[str]:
    """Every non-conforming line of a written file, as ``FILE:LINE: why``."""
    problems = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError as exc:
            problems.append(f"{path}:{number}: not JSON ({exc})")
            continue
        why = check_line(fmt, method, line)
        if why is not None:
            problems.append(f"{path}:{number}: {why}")
    return problems


# -- conversions -----------------------------------------------------------------------


class LeftOut(Exception):
    """An example this format cannot say; the message is the reason, counted."""


def _text(content: Any) -> str:
    """String content, or text parts joined; any other part cannot be said as text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    ):
        return "".join(str(part.get("text", "")) for part in content)
    raise LeftOut("non-text content (images, audio): this format is text only")


def _plain(message: dict[str, Any], weight_key: str | None) -> dict[str, Any]:
    """A text message: role (OpenAI's ``developer`` as ``system``) and string content."""
    if message.get("tool_calls") or message.get("role") == "tool":
        raise LeftOut("tool calls: this format has none (the trl export keeps them)")
    role = "system" if message.get("role") == "developer" else str(message.get("role"))
    out: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
    if weight_key == "weight" and message.get("weight") in (0, 1):
        out["weight"] = int(message["weight"])
    elif weight_key == "train" and role == "assistant" and message.get("weight") in (0, 1):
        out["train"] = bool(message["weight"])  # axolotl's message_field_training
    return out


def _no_tools(example: dict[str, Any]) -> None:
    if example.get("tools") or (example.get("input") or {}).get("tools"):
        raise LeftOut("tool definitions: this format has none (the trl export keeps them)")


def _together(method: str, example: dict[str, Any]) -> dict[str, Any]:
    _no_tools(example)
    if method == "sft":
        return {"messages": [_plain(m, "weight") for m in example["messages"]]}
    return {
        "input": {"messages": [_plain(m, None) for m in example["input"]["messages"]]},
        "preferred_output": [_plain(m, None) for m in example["preferred_output"]],
        "non_preferred_output": [_plain(m, None) for m in example["non_preferred_output"]],
    }


def _axolotl(method: str, example: dict[str, Any]) -> dict[str, Any]:
    _no_tools(example)
    if method == "sft":
        return {"messages": [_plain(m, "train") for m in example["messages"]]}
    return {
        "messages": [_plain(m, None) for m in example["input"]["messages"]],
        "chosen": _plain(example["preferred_output"][0], None),
        "rejected": _plain(example["non_preferred_output"][0], None),
    }


def _one_by_one(
    convert: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> Callable[[str, list[dict[str, Any]], Written], list[dict[str, Any]]]:
    def rows(method: str, examples: list[dict[str, Any]], written: Written) -> list[dict[str, Any]]:
        out = []
        for example in examples:
            try:
                out.append(convert(method, example))
            except LeftOut as why:
                written.leave_out(str(why))
        return out

    return rows


def _text_only(example: dict[str, Any]) -> None:
    """Raise LeftOut for image or audio parts: TRL's rows here carry text (``rows._text``
    would drop the parts, and an example without its image is another example)."""
    source = example.get("input") or {}
    for key in ("messages", "preferred_output", "non_preferred_output"):
        for message in [*(example.get(key) or []), *(source.get(key) or [])]:
            if message.get("content") is not None:
                _text(message["content"])


def _trl(method: str, examples: list[dict[str, Any]], written: Written) -> list[dict[str, Any]]:
    kept = []
    for example in examples:
        try:
            _text_only(example)
        except LeftOut as why:
            written.leave_out(str(why))
            continue
        kept.append(example)
    examples = kept
    if method == "sft":
        rows, kind, warnings = sft_rows(examples)
        written.notes += warnings
        note = "rows are TRL's language-modeling type (messages)"
        if kind == "messages" and note not in written.notes:
            written.notes.append(note)
        return rows
    return dpo_rows(examples)


CONVERTERS: dict[str, Callable[[str, list[dict[str, Any]], Written], list[dict[str, Any]]]] = {
    "together": _one_by_one(_together),
    "trl": _trl,
    "axolotl": _one_by_one(_axolotl),
}


# -- writing ---------------------------------------------------------------------------


@dataclass
class Written:
    """One format's files in the export directory, and what it left out."""

    fmt: str
    files: list[str] = field(default_factory=list)  # relative to the launch directory
    examples: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _uses_weights(examples: list[dict[str, Any]]) -> bool:
    return any("weight" in m for e in examples for m in e.get("messages") or [])


def _open_model(base_model: str) -> str:
    """``base_model`` for the stub: ours when it names an open model (``org/name`` or a
    path), else a placeholder to fill in (a hosted model such as gpt-4.1 has no weights)."""
    if "/" in base_model and not base_model.startswith("ft:"):
        return base_model
    return "CHANGE-ME: a Hugging Face model id or a local model directory"


def axolotl_config(
    manifest: Manifest, *, validation: bool, weights: bool, epochs: int
) -> dict[str, Any]:
    """The config stub's keys (docs.axolotl.ai/docs/config-reference.html)."""
    dataset: dict[str, Any] = {"path": "train.jsonl", "ds_type": "json"}
    if manifest.method == "dpo":
        # rlhf.html, chat_template.default: these keys and this roles mapping
        dataset |= {
            "type": "chat_template.default",
            "field_messages": "messages",
            "field_chosen": "chosen",
            "field_rejected": "rejected",
            "message_property_mappings": {"role": "role", "content": "content"},
            "roles": {"user": ["user"], "assistant": ["assistant"], "system": ["system"]},
        }
    else:
        # dataset-formats/conversation.html: the tokenizer's template, loss on the answers
        dataset |= {
            "type": "chat_template",
            "field_messages": "messages",
            "roles_to_train": ["assistant"],
            "train_on_eos": "turn",
        }
        if weights:
            dataset["message_field_training"] = "train"
    config: dict[str, Any] = {"base_model": _open_model(manifest.base_model)}
    config["chat_template"] = "tokenizer_default"
    if manifest.method == "dpo":
        config["rl"] = "dpo"
    config["datasets"] = [dataset]
    if validation:
        config["test_datasets"] = [{**dataset, "path": "validation.jsonl"}]
    else:
        config["val_set_size"] = 0
    config |= {
        "output_dir": f"./outputs/{manifest.name}",
        "sequence_len": 2048,
        "adapter": "lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target_linear": True,
        "micro_batch_size": 1,
        "gradient_accumulation_steps": 4,
        "num_epochs": epochs,
        "learning_rate": 0.0002,
        "optimizer": "adamw_torch",
        "lr_scheduler": "cosine",
    }
    return config


def _config_text(manifest: Manifest, config: dict[str, Any]) -> str:
    import yaml  # PyYAML: only when a set is exported

    header = [
        f"# axolotl config stub written by pytest-modelopt for {manifest.name}",
        f"# ({manifest.method}, {manifest.examples} examples of {manifest.base_model}).",
        "# Keys: https://docs.axolotl.ai/docs/config-reference.html; the dataset entry:",
        "# https://docs.axolotl.ai/docs/dataset-formats/conversation.html (sft) or",
        "# https://docs.axolotl.ai/docs/rlhf.html (dpo). Set base_model and the training",
        "# settings, then, in this directory: axolotl train config.yaml",
    ]
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=88)
    return "\n".join(header) + "\n" + body


def export_formats(manifest: Manifest, launch_dir: Path) -> list[Written]:
    """Write every format under ``launch_dir/export/`` and check each line; [] for RFT."""
    if manifest.method not in ("sft", "dpo"):
        return []
    files = {"train.jsonl": read_jsonl(launch_dir / manifest.train_file)}
    if manifest.validation_file:
        files["validation.jsonl"] = read_jsonl(launch_dir / manifest.validation_file)
    shutil.rmtree(launch_dir / EXPORT_DIR, ignore_errors=True)  # ours: no stale file stays
    out = []
    for fmt in FORMATS:
        directory = launch_dir / EXPORT_DIR / fmt
        directory.mkdir(parents=True, exist_ok=True)
        written = Written(fmt)
        for name, examples in files.items():
            rows = CONVERTERS[fmt](manifest.method, examples, written)
            path = directory / name
            _write_jsonl(path, rows)
            problems = check_file(fmt, manifest.method, path)
            if problems:
                raise BackendError(
                    f"the {fmt} export does not conform to its format (a bug: please report "
                    f"it): {problems[0]}"
                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                )
            written.files.append(f"{EXPORT_DIR}/{fmt}/{name}")
            if name == "train.jsonl":
                written.examples = len(rows)
        if fmt == "axolotl":
            epochs = manifest.validation.n_epochs if manifest.validation else 3
            config = axolotl_config(
                manifest,
                validation=len(files) > 1,
                weights=_uses_weights(files["train.jsonl"]),
                epochs=epochs,
            )
            (directory / AXOLOTL_CONFIG).write_text(_config_text(manifest, config), "utf-8")
            written.files.append(f"{EXPORT_DIR}/{fmt}/{AXOLOTL_CONFIG}")
        out.append(written)
    return out


_HOW = {
    "together": (
        "Together AI ({docs}): upload train.jsonl with Together's client and create a "
        "fine-tuning job on it; its client checks the file first."
    ),
    "trl": (
        "Hugging Face TRL ({docs}): datasets.load_dataset('json', data_files="
        "'train.jsonl') gives SFTTrainer (sft) or DPOTrainer (dpo) its train_dataset."
    ),
    "axolotl": (
        "axolotl ({docs}): set base_model in config.yaml, then run `axolotl train "
        "config.yaml` in that directory."
    ),
}
_DOCS = {
    "together": "https://docs.together.ai/docs/fine-tuning/data-preparation",
    "trl": "https://huggingface.co/docs/trl/dataset_formats",
    "axolotl": "https://docs.axolotl.ai/docs/dataset-formats/conversation.html",
}


def left_out_text(written: Written) -> str:
    return "; ".join(f"{count} left out: {why}" for why, count in sorted(written.left_out.items()))


def readme(manifest: Manifest, launch_dir: Path, written: Sequence[Written]) -> str:
    """``export/README.md``: what each directory holds and what to run with it."""
    lines = [
        f"# {manifest.name}: {manifest.method} training set for other trainers",
        "",
        f"Written by pytest-modelopt from run {manifest.source_run or '(unknown)'}: "
        f"{manifest.examples} examples; the {len(manifest.holdout_cases)} held-out cases are "
        "in no file. ../train.jsonl is the same set in OpenAI's format.",
        "",
    ]
    for entry in written:
        lines.append(f"- `{entry.fmt}/`: " + _HOW[entry.fmt].format(docs=_DOCS[entry.fmt]))
        lines.append(f"  {entry.examples} examples in train.jsonl.")
        if entry.left_out:
            lines.append(f"  {left_out_text(entry)}.")
        lines += [f"  {note}." for note in entry.notes]
    lines += [
        "",
        "Once a model is trained from one of these, record it, so that its runs score it "
        "only on the cases it never saw:",
        "",
        f"    modelopt jobs register {launch_dir} MODEL_NAME",
        "    pytest --eval-models MODEL_NAME",
        "",
    ]
    return "\n".join(lines)
