"""``modelopt export openai-evals``: evals as OpenAI's create-eval and create-run request
bodies, the way back from ``modelopt import openai-evals`` (``openai_evals.py``).

A test module's ``eval`` markers are built into specs by ``collect/spec.py``, as pytest
builds them (the module is imported, as pytest imports it); the graders are written with
``to_openai()``, the dataset's rows as the run's items, the prompt file as the run's
``input_messages`` template and ``sampling_params``, one run per model and ``sweep=``
combination, named as pytest names the eval. What the import kept in the sidecar
(``tests/evals/openai/NAME.json``: the eval's name, metadata, data source config, and runs
that no prompt file describes) is written back, so importing what export writes gives
back the same project. What has no OpenAI form (a Python function grader, a request
parameter a run has no field for, ``samples=``: a run samples each item once) is listed,
not written.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, find_project, load_settings
from ..graders.base import GraderError
from .openai_evals import PARAMS, Gap, ImportFailed, dump, fail, format_command, slug

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from ..collect.spec import EvalSpec

#: the data source config of an eval that kept none (a hand-written one): any object items
DEFAULT_CONFIG: dict[str, Any] = {
    "type": "custom",
    "item_schema": {"type": "object"},
    "include_sample_schema": True,
}
#: prompt parameters -> sampling_params keys (the rest have no place in a run)
_CHAT_SAMPLING = {"max_tokens": "max_completion_tokens", **{k: k for k in PARAMS}}


@dataclass
class Exported:
    """One eval as OpenAI's create-eval and create-run request bodies."""

    name: str
    eval: dict[str, Any]
    runs: list[dict[str, Any]]
    gaps: list[Gap]


def export_module(path: Path, root: Path) -> list[Exported]:
    """The evals of one test module, read from its ``eval`` markers as pytest would:
    the module is imported (as pytest imports it), its markers built into specs by
    ``collect/spec.py``, the prompt file read as written."""
    from ..collect.spec import EvalSpecError, build_spec, merge_marker_kwargs  # export only

    name = f"_modelopt_export_{slug(path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise fail(
            _shown(path), "", "not a Python module", "pass a test module (tests/evals/test_x.py)"
        )
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise fail(
            _shown(path),
            "",
            f"cannot be imported ({type(exc).__name__}: {exc})",
            "fix it so pytest can collect it",
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    try:
        selected = load_settings(root).models
    except ConfigError:
        selected = []
    module_kwargs = [m.kwargs for m in _marks(getattr(module, "pytestmark", None))]
    out = []
    for attribute, fn in sorted(vars(module).items()):
        if not attribute.startswith("test") or not callable(fn):
            continue
        marks = getattr(fn, "pytestmark", None)
        own = [m.kwargs for m in _marks(marks)]
        if (not own and not module_kwargs) or _marks(marks, "skip"):
            continue
        kwargs = merge_marker_kwargs(own[::-1] + module_kwargs[::-1])
        where = f"{_shown(path)}::{attribute}"
        try:
            eval_spec = build_spec(
                kwargs, default_name=f"{path.stem}::{attribute}",
                selected_models=() if "models" in kwargs else selected,
                test_dir=path.parent, rootdir=root,
            )  # fmt: skip
        except EvalSpecError as exc:
            raise fail(
                where, "eval marker", str(exc), "fix the marker (pytest says the same)"
            ) from None
        out.append(_export_spec(eval_spec, path, attribute))
    if not out:
        raise fail(
            _shown(path), "", "has no eval marker", "pass a module with pytest.mark.eval(...)"
        )
    return out


def _shown(path: Path) -> str:
    """A module's path as the user wrote it: relative to here when it is below here."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _marks(value: Any, name: str = "eval") -> list[Any]:
    """The marks called ``name`` in a ``pytestmark`` value (a mark, a decorator or a list)."""
    items = value if isinstance(value, list) else [value] if value is not None else []
    marks = [getattr(item, "mark", item) for item in items]
    return [m for m in marks if getattr(m, "name", None) == name]


def _export_spec(spec: EvalSpec, path: Path, attribute: str) -> Exported:
    where = f"{_shown(path)}::{attribute}"
    stem = path.stem.removeprefix("test_")
    sidecar_path = path.parent / "openai" / f"{stem}.json"
    sidecar: dict[str, Any] = {}
    if sidecar_path.is_file():
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    gaps: list[Gap] = []
    criteria = []
    for grader in spec.graders:
        try:
            criteria.append(grader.to_openai())
        except GraderError as exc:
            gaps.append(Gap(where, f"grader {grader.label!r}", str(exc)))
    graders_file = path.parent / "graders" / f"{stem}.json"
    if not spec.graders and "run" in sidecar and graders_file.is_file():
        # an imported eval without a prompt file grades in its test body, from this file
        criteria = json.loads(graders_file.read_text(encoding="utf-8"))
    eval_body: dict[str, Any] = {
        "name": sidecar.get("name", spec.name),
        "data_source_config": sidecar.get("data_source_config", DEFAULT_CONFIG),
        "testing_criteria": criteria,
    }
    if "metadata" in sidecar:
        eval_body["metadata"] = sidecar["metadata"]
    rows: list[dict[str, Any]] = []
    if spec.dataset_path is not None:
        from ..collect.datasets import DatasetError, load_cases  # only export reads datasets

        try:
            rows = [dict(case) for case in load_cases(spec.dataset_path, display_path=spec.dataset)]
        except DatasetError as exc:
            raise fail(
                where, "dataset", str(exc), "fix the dataset (pytest says the same)"
            ) from None
    if spec.samples > 1:
        gaps.append(
            Gap(
                where,
                f"samples={spec.samples}",
                "an OpenAI run has no samples field and samples each item once: each run "
                f"is written once; create it {spec.samples} times for as many samples",
            )
        )
    run = sidecar.get("run")
    if spec.prompt_path is None and isinstance(run, dict):
        return Exported(spec.name, eval_body, _sidecar_runs(run, spec, rows), gaps)
    if spec.prompt_path is None:
        gaps.append(
            Gap(where, "no prompt file", "a run needs input messages: only the eval is written")
        )
        return Exported(spec.name, eval_body, [], gaps)
    return Exported(
        spec.name, eval_body, _prompt_runs(spec, spec.prompt_path, rows, where, gaps), gaps
    )


def _prompt_runs(
    spec: EvalSpec, prompt: Path, rows: list[dict[str, Any]], where: str, gaps: list[Gap]
) -> list[dict[str, Any]]:
    """One run per model and sweep variant (``sweep=``: each combination of values is
    its own run, its sampling_params differing), named as pytest names the eval. A sweep
    over a parameter that a run has no field for is reported and not written as
    variants: their runs would be the same run, under different names."""
    from ..collect.spec import variants  # export only: a sweep's combinations

    swept = variants(spec)
    written: list[tuple[EvalSpec, str, list[dict[str, Any]], dict[str, Any]]] = []
    dropped: list[Gap] = []
    for variant in swept:
        variant_gaps: list[Gap] = []
        kind, messages, sampling = _prompt_as_run(prompt, variant.params or {}, where, variant_gaps)
        written.append((variant, kind, messages, sampling))
        dropped += [gap for gap in variant_gaps if gap not in dropped]
    lost = sorted(
        {
            p
            for p, _ in spec.sweep
            if any(g.what == f"parameter {p.split('.')[0]!r}" for g in dropped)
        }
    )
    if lost:
        kind, messages, sampling = _prompt_as_run(prompt, spec.params or {}, where, [])
        written = [(spec, kind, messages, sampling)]
        gaps.append(
            Gap(
                where,
                f"sweep over {', '.join(map(repr, lost))}",
                "a run's sampling_params have no field for it: its variants are not "
                "written (they would be the same run); one run per model is",
            )
        )
    gaps += dropped
    runs = []
    for variant, kind, messages, sampling in written:
        for model in spec.models:
            data_source: dict[str, Any] = {
                "type": kind,
                "model": model,
                "input_messages": {"type": "template", "template": messages},
            }
            if sampling:
                data_source["sampling_params"] = sampling
            data_source["source"] = {
                "type": "file_content",
                "content": [{"item": r} for r in rows],
            }
            runs.append({"name": run_name(variant.name, model), "data_source": data_source})
    return runs


def run_name(eval_name: str, model: str) -> str:
    """A run's ``name``: the eval as pytest names it (a sweep's value included) and the
    model, as the summary's graders lines show them (``test_x::test_y [gpt-4.1]``)."""
    return f"{eval_name} [{model}]"


def _sidecar_runs(
    run: dict[str, Any], spec: EvalSpec, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The runs an import kept in the sidecar (no prompt file describes them): stored
    samples as one ``jsonl`` run, each item's own messages as one run per model."""
    models = spec.models
    if run.get("type") == "jsonl":
        content = [
            {"item": {k: v for k, v in r.items() if k != "sample"}, "sample": r["sample"]}
            for r in rows
        ]
        source = {"type": "jsonl", "source": {"type": "file_content", "content": content}}
        name = run_name(spec.name, models[0]) if models else spec.name
        return [{"name": name, "data_source": source}]
    out = []
    for model in models:
        data_source = {"type": run["type"], "model": model, "input_messages": run["input_messages"]}
        if run.get("sampling_params"):
            data_source["sampling_params"] = run["sampling_params"]
        data_source["source"] = {"type": "file_content", "content": [{"item": r} for r in rows]}
        out.append({"name": run_name(spec.name, model), "data_source": data_source})
    return out


def _prompt_as_run(
    path: Path, overrides: Mapping[str, Any], where: str, gaps: list[Gap]
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """A prompt file as a run's data source type, input_messages template and
    sampling_params. Templates that name a case's fields bare (``{{ ticket }}``) are
    written with OpenAI's namespace (``{{ item.ticket }}``), which renders the same here."""
    from ..collect.prompts import TEXT_SUFFIXES  # only export reads prompt files as data

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in TEXT_SUFFIXES:
        content = _faithful(text.strip("\n"), path, "the template", where)
        return "completions", [{"role": "user", "content": content}], {}
    import yaml  # PyYAML, only when a YAML prompt is exported (start-up cost)

    data = dict(yaml.safe_load(text))
    for key, value in overrides.items():  # as the run merges them (Prompt.request_params)
        current = data.get(key)
        if key in ("reasoning", "text") and isinstance(current, dict) and isinstance(value, dict):
            value = {**current, **value}
        data[key] = value
    api = data.pop("api", "chat")
    messages = []
    for number, message in enumerate(data.pop("messages"), start=1):
        content = _faithful(message["content"], path, f"message {number}", where)
        messages.append({"role": message["role"], "content": content})
    sampling: dict[str, Any] = {}
    for key, value in data.items():
        if key in _CHAT_SAMPLING:
            sampling[_CHAT_SAMPLING[key]] = value
        elif key == "max_output_tokens":
            sampling["max_completion_tokens"] = value
        elif key in ("response_format", "tools", "text"):
            sampling[key] = value
        elif key == "reasoning" and isinstance(value, dict) and set(value) == {"effort"}:
            sampling["reasoning_effort"] = value["effort"]
        else:
            gaps.append(
                Gap(
                    f"{where}: {path.name}",
                    f"parameter {key!r}",
                    "a run's sampling_params have no such field",
                )
            )
    return ("responses" if api == "responses" else "completions"), messages, sampling


def _faithful(content: Any, path: Path, what: str, where: str) -> Any:
    """A message's content (text, or content parts) with OpenAI's ``item.`` names, or the
    eval refused: one error naming the module, the prompt file and the message whose
    template has no exact ``item.`` form."""
    try:
        if isinstance(content, list):
            return [_eval_part(part) for part in content]
        return _item_namespace(content)
    except Unfaithful as exc:
        raise fail(
            where,
            f"{_shown(path)}: {what}",
            f"cannot be written with OpenAI's item namespace: {exc}",
            "write the case's fields as {{ item.NAME }} in the prompt file yourself",
        ) from None


def _eval_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A prompt file's content part in the eval's shape (input_text, input_image)."""
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return {"type": "input_text", "text": _item_namespace(str(part["text"]))}
    if kind == "image_url":
        image = part["image_url"]
        out = {"type": "input_image", "image_url": _item_namespace(image["url"])}
        return {**out, **({"detail": image["detail"]} if "detail" in image else {})}
    return {**part, "image_url": _item_namespace(str(part.get("image_url", "")))}


class Unfaithful(Exception):
    """A template that the ``item.`` rewrite cannot carry over exactly; nothing is written."""


#: names a rewrite leaves alone: OpenAI's namespaces (``sample`` is the grader's)
_KEPT = frozenset({"item", "sample"})


def _item_namespace(template: str) -> str:
    """``{{ ticket }}`` and ``{{ case.ticket }}`` as OpenAI writes them, ``{{ item.ticket }}``.

    Driven by jinja2's own parser, not a pattern: the names the template reads from its
    context (``jinja2.meta.find_undeclared_variables``: not a loop variable, a ``set``
    name, a macro argument, a filter or an attribute) are located among the lexer's tokens
    and qualified there, so ``{{ body|upper }}``, ``{{ "body" }}``, ``{% raw %}`` text and
    ``{{ item.body }}`` come out right. The result is parsed again and must be the
    original's syntax tree with exactly those names qualified; a template for which that
    does not hold (a name both read and bound, a field named like a mapping's method) is
    refused with :class:`Unfaithful`, never written wrong."""
    import jinja2  # export only: the prompt's template syntax
    from jinja2 import meta, nodes, visitor

    env = jinja2.Environment()
    try:
        tree = env.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise Unfaithful(f"line {exc.lineno}: {exc.message}") from None
    free = meta.find_undeclared_variables(tree) - _KEPT
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    bound |= {m.name for m in tree.find_all(nodes.Macro)}
    bound |= {i.target for i in tree.find_all(nodes.Import)}
    for imported in tree.find_all(nodes.FromImport):
        bound |= {n if isinstance(n, str) else n[-1] for n in imported.names}
    if free & bound:
        names = ", ".join(sorted(free & bound))
        raise Unfaithful(
            f"{names} is both a case field and a name the template binds (a loop variable, "
            "set, macro or import): rename one"
        )
    methods = sorted(n for n in free - {"case"} if hasattr(dict, n))
    if methods:
        raise Unfaithful(
            f"the field {methods[0]!r} would read as item.{methods[0]}, which is the "
            "mapping's method in a template, not the field: rename the field"
        )
    if not free:
        return template
    spans = _name_spans(env, template, free)
    out = template
    for start, end, name in reversed(spans):
        out = out[:start] + ("item" if name == "case" else f"item.{name}") + out[end:]

    class Qualify(visitor.NodeTransformer):
        def visit_Name(self, node: nodes.Name) -> nodes.Node:
            if node.ctx != "load" or node.name not in free:
                return node
            if node.name == "case":
                return nodes.Name("item", "load")
            return nodes.Getattr(nodes.Name("item", "load"), node.name, "load")

    try:
        rewritten = env.parse(out)
    except jinja2.TemplateSyntaxError:
        rewritten = None
    if rewritten != Qualify().visit(env.parse(template)):
        raise Unfaithful("its case fields cannot be qualified exactly as item.NAME")
    return out


def _name_spans(env: Any, template: str, names: set[str]) -> list[tuple[int, int, str]]:
    """Where in ``template`` the lexer's ``name`` tokens for ``names`` are, as variables
    (not after ``.``, ``|`` or ``is``, not a keyword argument): (start, end, name). The
    lexer drops the whitespace a ``{{-`` strips, so each token is found from the last."""
    tokens = list(env.lex(template))
    cursor = 0
    spans = []
    significant = [(i, t) for i, t in enumerate(tokens) if t[1] != "whitespace"]
    place = {}
    for index, (_, _, value) in enumerate(tokens):
        found = template.find(value, cursor)
        if found < 0 or template[cursor:found].strip():
            raise Unfaithful("its text does not lex back to itself (line endings?)")
        place[index] = found
        cursor = found + len(value)
    for position, (index, (_, kind, value)) in enumerate(significant):
        if kind != "name" or value not in names:
            continue
        before = [t[2] for _, t in significant[max(0, position - 2) : position]]
        after = significant[position + 1][1][2] if position + 1 < len(significant) else ""
        if (before[-1:] in (["."], ["|"], ["is"]) or before == ["is", "not"]) or after == "=":
            continue
        spans.append((place[index], place[index] + len(value), value))
    return spans


def cmd_export(args: argparse.Namespace) -> int:
    root = find_project(Path.cwd())
    out = Path(args.output)
    try:
        exported = [e for p in args.paths for e in export_module(Path(p).resolve(), root)]
    except ImportFailed as exc:
        print(f"modelopt export openai-evals: {exc}; nothing was written", file=sys.stderr)
        return 2
    for item in exported:
        folder = out / slug(str(item.eval["name"]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval.json").write_text(dump(item.eval), encoding="utf-8")
        written = ["eval.json"]
        for index, run in enumerate(item.runs, start=1):
            (folder / f"run-{index}.json").write_text(dump(run), encoding="utf-8")
            written.append(f"run-{index}.json")
        print(f"modelopt export openai-evals: {item.name} -> {folder}: {', '.join(written)}")
        for gap in item.gaps:
            print(f"  not exported: {gap.line()}")
    return 0


def add_command(sub: Any) -> None:
    """``modelopt export openai-evals``."""
    exporter = format_command(
        sub, "export", "write evals in another tool's format",
        "evals as OpenAI create-eval and create-run request bodies (JSON)",
    )  # fmt: skip
    exporter.add_argument("paths", nargs="+", help="test modules with eval markers")
    exporter.add_argument("-o", "--output", required=True, help="the folder to write into")
    exporter.set_defaults(fn=cmd_export)
