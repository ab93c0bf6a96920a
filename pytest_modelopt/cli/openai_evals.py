"""``modelopt import openai-evals``: OpenAI eval exports as a project that ``pytest`` runs.

OpenAI's hosted Evals API is gone; its users have the JSON it returned: ``Eval`` objects
(``data_source_config`` and ``testing_criteria``), eval run objects (``data_source``: the
model, the ``input_messages`` template, ``sampling_params`` and the items) and JSONL files
of items. This module turns them into what this package runs: per eval and run
configuration a test module, a dataset (each item a row, its ``id`` kept), a prompt file
(the template's text kept as it was: ``{{ item.x }}`` renders, the prompt's context has
``item``), the ``testing_criteria`` verbatim as a graders JSON file that the test module
loads with ``graders.from_openai``, the models and the sampling parameters.

What cannot be carried over (a data source whose items live on OpenAI's servers, a grader
type this package lacks, an audio input...) is a :class:`Gap`: all of them are printed in
one report, and each is written into the project as a skipped test whose reason says what
was left out and what to do, so ``pytest -rs`` shows it and nothing is dropped silently.

``modelopt export openai-evals`` (``openai_export.py``) is the way back; what it needs of
an import is kept beside the project in ``tests/evals/openai/NAME.json`` (the sidecar).

Why here, in ``cli/``: it reads files a user exported and writes a project, as
``modelopt init`` does (its writer is reused); it needs ``graders/`` (a criterion is
carried over only if it builds and its JSON comes back as it was) and ``collect/`` (the
request parameters in each API's shape), which ``cli/`` may import, and no stage of the
pipeline needs it.

Every bad input is one :class:`ImportFailed` naming the file, the field (a JSON path), what
is wrong and what to do; nothing is written until every input has been read and checked.
Nor when a file the import would write exists (an earlier import's, perhaps edited since):
the import lists them all and stops, so a project is never half old and half new; with
``--force`` it overwrites those files, and no other.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..graders.base import GraderError, from_openai
from .init import Change, _write_new

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

DATA_SOURCE_CONFIGS = ("custom", "logs", "stored_completions")
DATA_SOURCES = ("completions", "responses", "jsonl")
SOURCES = ("file_content", "file_id", "stored_completions", "responses")
#: sampling_params keys that are request parameters of the run's API as they are
PARAMS = ("temperature", "top_p", "seed", "max_completion_tokens", "reasoning_effort")
_ROLES = ("system", "developer", "user", "assistant")
_SLUG = re.compile(r"[^a-z0-9]+")


class ImportFailed(Exception):
    """An input that cannot be read as an OpenAI eval export; nothing was written."""


@dataclass(frozen=True)
class Gap:
    """Something an export holds that the project cannot run: where, what, and why."""

    where: str
    what: str
    why: str

    def line(self) -> str:
        return f"{self.where}: {self.what}: {self.why}"


@dataclass
class EvalDef:
    """An ``Eval`` object (or a create-eval request body)."""

    file: str
    id: str | None
    name: str
    config_type: str
    #: the custom data source config in the create-eval request's form (``item_schema``,
    #: ``include_sample_schema``), kept beside the project so that export gives it back
    config: dict[str, Any] | None
    criteria: list[tuple[int, dict[str, Any]]]
    metadata: dict[str, Any] | None = None


@dataclass
class RunDef:
    """One run's data source: how items were sampled, and the items when they are in it."""

    file: str
    eval_id: str | None
    kind: str  # completions, responses, jsonl
    model: str | None
    messages: list[dict[str, Any]] | None
    params: dict[str, Any]
    rows: list[dict[str, Any]] | None  # None: the items are not in the export
    samples: list[dict[str, Any]] | None
    gaps: list[Gap] = field(default_factory=list)
    #: input_messages of type item_reference: the path of each item's own messages
    reference: tuple[str, ...] | None = None


@dataclass
class Items:
    """A plain JSONL file of items (or of ``{"item": ..., "sample": ...}`` lines)."""

    file: str
    rows: list[dict[str, Any]]
    samples: list[dict[str, Any]] | None


@dataclass
class Project:
    """One eval as files to write, and what could not be carried over."""

    name: str
    eval: EvalDef
    graders: list[dict[str, Any]]
    models: list[str]
    kind: str  # completions, responses, jsonl (stored samples), or "" (no run)
    prompt: dict[str, Any] | None
    rows: list[dict[str, Any]]
    gaps: list[Gap]
    #: item_reference runs: the path of each item's messages, the request parameters,
    #: and the run's sampling_params as they were (for the way back)
    reference: tuple[str, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)


def fail(file: str, where: str, problem: str, todo: str) -> ImportFailed:
    at = f"{file}: {where}" if where else file
    return ImportFailed(f"{at}: {problem}; {todo}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _need(file: str, obj: Mapping[str, Any], key: str, where: str, kind: type, todo: str) -> Any:
    value = obj.get(key)
    path = f"{where}.{key}" if where else key
    if value is None:
        raise fail(file, path, "missing", todo)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise fail(file, path, f"must be {_kind(kind())}, got {_kind(value)}", todo)
    return value


def _one_of(file: str, value: Any, where: str, allowed: Sequence[str], todo: str) -> str:
    if value not in allowed:
        raise fail(file, where, f"{value!r} is not one of {', '.join(allowed)}", todo)
    return str(value)


# -- reading ---------------------------------------------------------------------------


def read_inputs(paths: Sequence[Path]) -> tuple[list[EvalDef], list[RunDef], list[Items]]:
    """Every path read and checked; a JSON file holds an eval, a run, or a list of them."""
    evals: list[EvalDef] = []
    runs: list[RunDef] = []
    items: list[Items] = []
    for path in paths:
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(file, "", f"cannot be read ({exc})", "pass a readable UTF-8 file") from None
        if path.suffix.lower() == ".jsonl":
            items.append(read_items(file, text))
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(
                file,
                f"line {exc.lineno}",
                f"not JSON ({exc.msg})",
                "pass the JSON the API returned",
            ) from None
        objects = (
            data.get("data") if isinstance(data, dict) and data.get("object") == "list" else None
        )
        for index, obj in enumerate(objects if isinstance(objects, list) else [data]):
            where = f"data[{index}]" if objects is not None else ""
            if not isinstance(obj, dict):
                raise fail(file, where, f"must be an object, got {_kind(obj)}", _WHAT)
            if obj.get("object") == "eval" or "testing_criteria" in obj:
                evals.append(read_eval(file, obj, where))
            elif obj.get("object") == "eval.run" or "data_source" in obj:
                runs.append(read_run(file, obj, where))
            else:
                raise fail(file, where, "neither an eval nor an eval run", _WHAT)
    return evals, runs, items


_WHAT = (
    "pass an Eval object (GET /v1/evals/{eval_id}: data_source_config, testing_criteria), "
    "an eval run (GET /v1/evals/{eval_id}/runs/{run_id}: data_source) or a JSONL file of items"
)


def read_eval(file: str, obj: Mapping[str, Any], where: str) -> EvalDef:
    at = f"{where}." if where else ""
    todo = "an Eval object has data_source_config {type: custom|logs|stored_completions}"
    config = _need(file, obj, "data_source_config", where, dict, todo)
    kind = _one_of(
        file, config.get("type"), f"{at}data_source_config.type", DATA_SOURCE_CONFIGS, todo
    )
    custom = _custom_config(file, config, f"{at}data_source_config") if kind == "custom" else None
    criteria = _need(
        file, obj, "testing_criteria", where, list, "testing_criteria is a list of graders"
    )
    checked = []
    for index, grader in enumerate(criteria):
        path = f"{at}testing_criteria[{index}]"
        if not isinstance(grader, dict) or not isinstance(grader.get("type"), str):
            raise fail(
                file, path, f"must be a grader object with a 'type', got {_kind(grader)}",
                "write each testing criterion as OpenAI grader JSON",
            )  # fmt: skip
        checked.append((index, grader))
    name = obj.get("name") if isinstance(obj.get("name"), str) and obj.get("name") else None
    eval_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    return EvalDef(
        file=file,
        id=eval_id,
        name=name or eval_id or Path(file).stem,
        config_type=kind,
        config=custom,
        criteria=checked,
        metadata=obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None,
    )


def _custom_config(file: str, config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A custom data source config in the create-eval request's form. The Eval object
    says ``schema`` (``{properties: {item: ..., sample: ...}}``); the request body says
    ``item_schema`` and ``include_sample_schema``."""
    todo = "a custom data source config has item_schema (a JSON Schema of an item)"
    at = f"{where}.item_schema"
    if "item_schema" in config:
        schema = config["item_schema"]
        sample = bool(config.get("include_sample_schema", False))
    else:
        wrapped = _need(file, config, "schema", where, dict, todo)
        properties = wrapped.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        # a schema that says nothing of the item allows any object, as OpenAI's did
        schema = properties.get("item", {"type": "object"})
        sample = "sample" in properties
        at = f"{where}.schema.properties.item"
    if not isinstance(schema, dict):
        raise fail(file, at, f"must be an object, got {_kind(schema)}", todo)
    import jsonschema  # only when a custom config is read (start-up cost of `modelopt`)

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise fail(file, at, f"not a JSON Schema ({exc.message})", todo) from None
    return {"type": "custom", "item_schema": schema, "include_sample_schema": sample}


def read_run(file: str, obj: Mapping[str, Any], where: str) -> RunDef:
    at = f"{where}." if where else ""
    todo = "a run's data_source has a type (completions, responses or jsonl) and a source"
    source_def = _need(file, obj, "data_source", where, dict, todo)
    base = f"{at}data_source"
    kind = _one_of(file, source_def.get("type"), f"{base}.type", DATA_SOURCES, todo)
    run = RunDef(
        file=file,
        eval_id=obj.get("eval_id") if isinstance(obj.get("eval_id"), str) else None,
        kind=kind,
        model=None,
        messages=None,
        params={},
        rows=None,
        samples=None,
    )
    source = _need(file, source_def, "source", base, dict, todo)
    source_kind = _one_of(file, source.get("type"), f"{base}.source.type", SOURCES, todo)
    if kind == "jsonl" and source_kind not in ("file_content", "file_id"):
        raise fail(file, f"{base}.source.type", f"{source_kind!r} is not a jsonl source", todo)
    if source_kind == "file_content":
        rows, samples = _content(file, source.get("content"), f"{base}.source.content")
        run.rows, run.samples = rows, samples
    elif source_kind == "file_id":
        run.gaps.append(
            Gap(
                f"{file}: {base}.source",
                f"the items of file {source.get('id')!r}",
                "the file is on OpenAI's servers: download it and pass its JSONL beside "
                "this run (modelopt import openai-evals ... items.jsonl)",
            )
        )
    else:
        run.gaps.append(
            Gap(
                f"{file}: {base}.source",
                f"a {source_kind!r} source (the items are logged model calls)",
                "the logs were on OpenAI's servers: export them as JSONL items and pass "
                "the file beside this run",
            )
        )
    if kind == "jsonl":
        return run
    model = source_def.get("model", obj.get("model"))
    if isinstance(model, str) and model:
        run.model = model
    else:
        run.gaps.append(
            Gap(f"{file}: {base}.model", "no model", "name the models in the eval marker")
        )
    run.messages = _input_messages(file, source_def.get("input_messages"), base, run)
    run.params = _sampling(file, source_def.get("sampling_params"), base, kind, run)
    return run


def _content(
    file: str, content: Any, where: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """file_content's lines: each ``{"item": {...}, "sample": {...}?}``."""
    todo = "file_content is a list of {item: {...}, sample: {...}} objects"
    if not isinstance(content, list):
        raise fail(file, where, f"must be a list, got {_kind(content)}", todo)
    rows, samples = [], []
    for index, line in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(line, dict) or not isinstance(line.get("item"), dict):
            raise fail(file, f"{at}.item", "missing or not an object", todo)
        rows.append(dict(line["item"]))
        if "sample" in line:
            if not isinstance(line["sample"], dict):
                raise fail(
                    file, f"{at}.sample", f"must be an object, got {_kind(line['sample'])}", todo
                )
            samples.append(dict(line["sample"]))
    if samples and len(samples) != len(rows):
        raise fail(
            file, where, "some lines have a sample and some do not", "give every line one, or none"
        )
    return rows, samples or None


def read_items(file: str, text: str) -> Items:
    """A JSONL file: each line an item, or ``{"item": ..., "sample": ...}`` as OpenAI's
    JSONL data sources hold them."""
    rows, samples = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise fail(
                file, f"line {number}", f"not JSON ({exc.msg})", "write one JSON object per line"
            ) from None
        if not isinstance(line, dict):
            raise fail(
                file,
                f"line {number}",
                f"must be an object, got {_kind(line)}",
                "write one JSON object per line",
            )
        if isinstance(line.get("item"), dict) and set(line) <= {"item", "sample"}:
            rows.append(dict(line["item"]))
            if isinstance(line.get("sample"), dict):
                samples.append(dict(line["sample"]))
        else:
            rows.append(line)
    if samples and len(samples) != len(rows):
        raise fail(
            file, "", "some lines have a sample and some do not", "give every line one, or none"
        )
    return Items(file, rows, samples or None)


def _input_messages(file: str, value: Any, base: str, run: RunDef) -> list[dict[str, Any]] | None:
    where = f"{base}.input_messages"
    todo = "input_messages is {type: template, template: [{role, content}, ...]}"
    if value is None:
        run.gaps.append(Gap(f"{file}: {where}", "no input_messages", "write the prompt file"))
        return None
    if not isinstance(value, dict):
        raise fail(file, where, f"must be an object, got {_kind(value)}", todo)
    kind = _one_of(file, value.get("type"), f"{where}.type", ("template", "item_reference"), todo)
    if kind == "item_reference":  # each item holds its messages: the test sends them
        reference = value.get("item_reference")
        if not isinstance(reference, str) or not re.fullmatch(r"item(\.\w+)+", reference):
            raise fail(
                file, f"{where}.item_reference", f"{reference!r} is not a path in the item",
                "write it as item.FIELD, e.g. item.input_trajectory",
            )  # fmt: skip
        run.reference = tuple(reference.split(".")[1:])
        return None
    template = _need(file, value, "template", where, list, todo)
    messages = []
    for index, message in enumerate(template):
        at = f"{where}.template[{index}]"
        if not isinstance(message, dict):
            raise fail(file, at, f"must be a message object, got {_kind(message)}", todo)
        role = _one_of(file, message.get("role"), f"{at}.role", _ROLES, todo)
        content = _message_content(file, message.get("content"), f"{at}.content", role, run)
        if content is not None:
            messages.append({"role": role, "content": content})
    return messages


def _message_content(file: str, content: Any, where: str, role: str, run: RunDef) -> Any:
    """A message's content as a prompt file writes it: a string template, or a list of
    text and image parts (the image URL a template too)."""
    todo = "content is a string, or a list of input_text / output_text / input_image parts"
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    out: list[Any] = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]" if isinstance(content, list) else where
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(part, str):
            out.append({"type": "input_text", "text": part})
        elif kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            out.append({"type": "input_text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"type": "input_image", "image_url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append(image)
        elif kind in ("input_audio", "input_file"):
            run.gaps.append(
                Gap(f"{file}: {at}", f"an {kind} part", "prompt files hold text and images only")
            )
        else:
            raise fail(file, at, f"not a content part: {json.dumps(part)[:80]}", todo)
    if all(p["type"] == "input_text" for p in out) and (role == "assistant" or len(out) == 1):
        return "".join(p["text"] for p in out)  # an assistant's content is a string
    if role == "assistant":
        run.gaps.append(Gap(f"{file}: {where}", "an image in an assistant message", "dropped"))
        return "".join(p["text"] for p in out if p["type"] == "input_text")
    return out or None


def _sampling(file: str, value: Any, base: str, kind: str, run: RunDef) -> dict[str, Any]:
    where = f"{base}.sampling_params"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(file, where, f"must be an object, got {_kind(value)}", "or leave it out")
    params: dict[str, Any] = {}
    for key, param in value.items():
        if key in PARAMS:
            if key == "seed" and kind == "responses":
                run.gaps.append(
                    Gap(
                        f"{file}: {where}.seed",
                        f"seed {param!r}",
                        "the Responses API takes no seed",
                    )
                )
                continue
            params[key] = param
        elif key in ("response_format", "tools", "text"):
            params[key] = param
        else:
            run.gaps.append(
                Gap(
                    f"{file}: {where}.{key}",
                    f"{key} {json.dumps(param)[:60]}",
                    "not a sampling parameter this package knows",
                )
            )
    return params


# -- assembling ------------------------------------------------------------------------


def slug(name: str) -> str:
    text = _SLUG.sub("_", name.lower()).strip("_") or "imported"
    return text if text[0].isalpha() else f"eval_{text}"


def assemble(evals: list[EvalDef], runs: list[RunDef], items: list[Items]) -> list[Project]:
    """Each eval with its runs (grouped by what they send: one project per prompt and
    parameters, the runs' models together) and its items."""
    if not evals:
        where = runs[0].file if runs else items[0].file if items else "the command line"
        raise fail(
            where, "", "no Eval object among the inputs",
            "pass the eval's JSON (GET /v1/evals/{eval_id}) with its runs and items",
        )  # fmt: skip
    projects: list[Project] = []
    taken: set[str] = set()
    for definition in evals:
        mine = [r for r in runs if r.eval_id in (None, definition.id) or len(evals) == 1]
        graders, grader_gaps = _graders(definition)
        groups: dict[str, list[RunDef]] = {}
        for run in mine:
            key = json.dumps(
                [run.kind, run.messages, run.params, run.rows, run.samples, run.reference],
                sort_keys=True,
            )
            groups.setdefault(key, []).append(run)
        base = slug(definition.name)
        for number, group in enumerate(groups.values() or [[]], start=1):
            name = base if len(groups) <= 1 else f"{base}_{number}"
            while name in taken:
                name += "_"
            taken.add(name)
            first = group[0] if group else None
            gaps = list(grader_gaps)
            rows, samples = (first.rows, first.samples) if first else (None, None)
            for run in group:
                gaps += run.gaps
            if rows is None and items:
                rows, samples = items[0].rows, items[0].samples
                gaps = [g for g in gaps if not g.where.endswith(".source")]
            if first is None:
                gaps.append(
                    Gap(definition.file, "no run",
                        f"no prompt or model to carry over: write prompts/{name}.yaml "
                        "(the eval is PENDING until then)")
                )  # fmt: skip
            if definition.config_type != "custom" and rows is None:
                gaps.append(
                    Gap(f"{definition.file}: data_source_config",
                        f"a {definition.config_type!r} data source",
                        "its items were logged calls on OpenAI's servers: export them as "
                        "JSONL and pass the file")
                )  # fmt: skip
            if rows and definition.config is not None:
                _check_items(
                    definition, rows, first.file if first and first.rows else items[0].file
                )
            kind = first.kind if first else ""
            if kind == "jsonl" and not samples:
                kind = ""
            models = list(dict.fromkeys(r.model for r in group if r.model))
            if kind == "jsonl" and samples:  # the samples' model, as the run's report named it
                named = {str(s.get("model")) for s in samples if s.get("model")}
                models = [named.pop() if len(named) == 1 else "stored-samples"]
            prompt = None
            if first is not None and first.messages:
                api = {"api": "responses"} if kind == "responses" else {}
                prompt = {**api, **first.params, "messages": first.messages}
            projects.append(
                Project(
                    name=name,
                    eval=definition,
                    graders=graders,
                    models=models,
                    kind=kind,
                    prompt=prompt,
                    rows=[{**r, "sample": s} for r, s in zip(rows, samples, strict=True)]
                    if rows and samples and kind == "jsonl"
                    else list(rows or []),
                    gaps=gaps,
                    reference=first.reference if first else None,
                    params=_request_params(first) if first and first.reference else {},
                    sampling=dict(first.params) if first else {},
                )
            )
    return projects


def _request_params(run: RunDef) -> dict[str, Any]:
    """The sampling parameters in the shape of the run's API (``max_completion_tokens``
    is the Responses API's ``max_output_tokens``...), as a prompt file would send them."""
    from ..collect.prompts import PromptError, api_params  # only item_reference runs need it

    api = "responses" if run.kind == "responses" else "chat"
    try:
        return api_params(run.params, api, "data_source.sampling_params")
    except PromptError as exc:
        raise fail(run.file, "", str(exc), "fix the run's sampling_params") from None


def _check_items(definition: EvalDef, rows: list[dict[str, Any]], file: str) -> None:
    """Every item against the eval's item schema: OpenAI refused a run whose items did
    not match it, and so does the import (the first mismatch, by item and field)."""
    import jsonschema  # only when items are checked (start-up cost of `modelopt`)

    assert definition.config is not None
    validator = jsonschema.Draft202012Validator(definition.config["item_schema"])
    for index, row in enumerate(rows):
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if error is not None:
            field = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            raise fail(
                file, f"item {index + 1}{field}", error.message,
                f"fix the item, or the item_schema of {definition.file}",
            )  # fmt: skip


def _graders(definition: EvalDef) -> tuple[list[dict[str, Any]], list[Gap]]:
    """The criteria this package grades as they are, and the gaps for the rest. A grader
    is carried over only if it builds and its JSON comes back exactly as it was read."""
    kept, gaps = [], []
    for index, data in definition.criteria:
        where = f"{definition.file}: testing_criteria[{index}]"
        label = f"grader {data.get('name', '')!r} ({data['type']})"
        try:
            built = from_openai(data)
        except GraderError as exc:
            gaps.append(Gap(where, label, f"{exc}"))
            continue
        if built.to_openai() != data:
            gaps.append(Gap(where, label, "it would not come back as it was written"))
            continue
        kept.append(data)
    return kept, gaps


# -- writing ---------------------------------------------------------------------------


def _module(project: Project) -> str:
    name = project.name
    lines = [
        f'"""The OpenAI eval {_docstring(repr(project.eval.name))}, imported by '
        "`modelopt import openai-evals`.",
        "",
        f"The testing criteria are graders/{name}.json (OpenAI grader JSON, as exported); the",
        f"items are data/{name}.jsonl. OpenAI's evals set no pass rate for a run: set",
        "threshold= in the marker to gate on one.",
        '"""',
        "",
        "import json",
        "from pathlib import Path",
        "",
        "import pytest",
        "",
        "from pytest_modelopt import graders",
        "",
        f'GRADERS = json.loads((Path(__file__).parent / "graders" / "{name}.json").read_text())',
        "",
    ]
    marker = [f'    dataset="data/{name}.jsonl",']
    if project.models:
        marker.append(f"    models={json.dumps(project.models)},")
    if project.kind == "jsonl":
        lines += ["", "@pytest.mark.eval(", *marker, ")"]
        lines += [
            f"def test_{name}(case, grade):",
            '    """Each item\'s stored sample, graded by every criterion."""',
            '    sample = case["sample"]',
            "    for grader in GRADERS:",
            "        grade(sample, graders.from_openai(grader))",
        ]
    elif project.reference is not None:
        send = "respond" if project.kind == "responses" else "chat"
        path = "".join(f"[{key!r}]" for key in project.reference)
        lines += [f"PARAMS = {project.params!r}", ""]
        lines += ["", "@pytest.mark.eval(", *marker, ")"]
        lines += [
            f"def test_{name}(llm, case, grade):",
            f'    """Each item\'s own messages (item.{".".join(project.reference)}), sent as they '
            'are;\n    every criterion grades the answer."""',
            f"    answer = llm.{send}(case{path}, **PARAMS)",
            "    for grader in GRADERS:",
            "        grade(answer, graders.from_openai(grader))",
        ]
    else:
        marker = [f'    prompt="prompts/{name}.yaml",', *marker]
        marker.append("    graders=[graders.from_openai(g) for g in GRADERS],")
        lines += ["", "@pytest.mark.eval(", *marker, ")"]
        lines += [
            f"def test_{name}(completion):",
            '    """The declared graders (the testing criteria) grade each completion."""',
        ]
    if not project.rows:  # the items stayed on the platform: the eval waits for them
        start = lines.index("@pytest.mark.eval(")
        guarded = [f"    {line}" if line else line for line in lines[start:]]
        lines[start:] = [
            f'if (Path(__file__).parent / "data" / "{name}.jsonl").is_file():  # the items',
            *guarded,
        ]
    for number, gap in enumerate(project.gaps, start=1):
        lines += [
            "",
            "",
            f"@pytest.mark.skip(reason={('not carried over: ' + gap.line())!r})",
            f"def test_not_carried_over_{number}():",
            f'    """{_docstring(gap.what)}"""',
        ]
    return "\n".join(lines) + "\n"


def _sidecar(project: Project) -> dict[str, Any]:
    """What the eval said that a pytest run does not need, kept for the way back
    (``modelopt export openai-evals``): its name, metadata and data source config, and
    for a run that no prompt file describes (stored samples, each item's own messages)
    the run's data source type, input messages and sampling parameters. Not its id: the
    platform's ids name nothing off the platform."""
    definition = project.eval
    out: dict[str, Any] = {"name": definition.name}
    if definition.metadata:
        out["metadata"] = definition.metadata
    if definition.config is not None:
        out["data_source_config"] = definition.config
    if project.kind == "jsonl":
        out["run"] = {"type": "jsonl"}
    elif project.reference is not None:
        reference = {
            "type": "item_reference",
            "item_reference": "item." + ".".join(project.reference),
        }
        out["run"] = {
            "type": project.kind,
            "input_messages": reference,
            "sampling_params": project.sampling,
        }
    return out


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _docstring(text: str) -> str:
    """Text from an export, safe inside a triple-quoted string of the generated module."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _yaml(data: Any) -> str:
    import yaml  # PyYAML, only when a prompt file is written (start-up cost)

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def project_files(root: Path, project: Project) -> list[tuple[Path, str]]:
    """Every file one eval's import writes, and its text."""
    evals = root / "tests" / "evals"
    name = project.name
    files = [
        (evals / f"test_{name}.py", _module(project)),
        (evals / "graders" / f"{name}.json", dump(project.graders)),
    ]
    if project.rows:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in project.rows)
        files.append((evals / "data" / f"{name}.jsonl", text))
    if project.prompt is not None:
        files.append((evals / "prompts" / f"{name}.yaml", _yaml(project.prompt)))
    files.append((evals / "openai" / f"{name}.json", dump(_sidecar(project))))
    return files


def write_files(root: Path, files: list[tuple[Path, str]], force: bool) -> list[Change]:
    """The files written: new ones never over a file made meanwhile, existing ones only
    with ``force`` (``cmd_import`` has refused them otherwise)."""
    changes = []
    for path, text in files:
        if force and path.exists():
            path.write_text(text, encoding="utf-8")
            changes.append(Change(path.relative_to(root).as_posix(), "replaced"))
        else:
            changes.append(_write_new(root, path, text))
    return changes


def cmd_import(args: argparse.Namespace) -> int:
    root = Path(args.output)
    try:
        projects = assemble(*read_inputs([Path(p) for p in args.paths]))
    except ImportFailed as exc:
        print(f"modelopt import openai-evals: {exc}; nothing was written", file=sys.stderr)
        return 2
    planned = [project_files(root, project) for project in projects]
    existing = [p.relative_to(root).as_posix() for files in planned for p, _ in files if p.exists()]
    if existing and not args.force:
        print(
            f"modelopt import openai-evals: {len(existing)} of the files it would write exist "
            f"in {root}: {', '.join(existing)}; pass --force to overwrite them (and only them), "
            "or -o another folder; nothing was written",
            file=sys.stderr,
        )
        return 2
    for project, files in zip(projects, planned, strict=True):
        changes = write_files(root, files, args.force)
        print(
            f"modelopt import openai-evals: {project.eval.name!r} -> "
            f"tests/evals/test_{project.name}.py"
        )
        for change in changes:
            why = f"  ({change.why})" if change.why else ""
            print(f"  {change.action:<8} {change.path}{why}")
        print(f"  {len(project.rows)} items, {len(project.graders)} graders, models: "
              f"{', '.join(project.models) or 'none (the settings decide)'}")  # fmt: skip
        if project.gaps:
            print(f"  not carried over ({len(project.gaps)}; each a skipped test in the module):")
            for gap in project.gaps:
                print(f"    - {gap.line()}")
        else:
            print("  everything carried over")
    print("next: pytest tests/evals -rs")
    return 0


def add_command(sub: Any) -> None:
    """``modelopt import openai-evals``: one subcommand per format under the verb, so
    another format can join it (``openai_export.py`` registers the way back)."""
    importer = format_command(
        sub, "import", "import evals defined elsewhere as pytest evals",
        "OpenAI eval exports (Eval and eval run JSON, JSONL items) as pytest evals",
    )  # fmt: skip
    importer.add_argument("paths", nargs="+", help="Eval / eval run JSON files and JSONL items")
    importer.add_argument("-o", "--output", default=".", help="the project to write into (here)")
    importer.add_argument(
        "--force", action="store_true", help="overwrite the files it writes that exist"
    )
    importer.set_defaults(fn=cmd_import)


def format_command(sub: Any, verb: str, verb_help: str, format_help: str) -> Any:
    command = sub.add_parser(verb, help=verb_help)
    return command.add_subparsers(dest="format", required=True).add_parser(
        "openai-evals", help=format_help
    )
