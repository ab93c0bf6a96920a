"""What an eval is: the ``eval`` marker turned into a spec, and the spec into parameters.

Pure logic; the plugin feeds it marker kwargs and gets plain data back: one
:class:`EvalParam` per (model, case, sample) that the test is parametrized over.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..graders.base import Grader, GraderError, as_grader
from ..verdict.gates import GateError, calibration_policy, parse_gate
from .marker import MARKER_KEYS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic import BaseModel

    from .datasets import Case


# an agent= reference: a dotted module path, a colon, a dotted attribute path
_AGENT_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class EvalSpecError(Exception):
    """A marker that cannot describe an eval (bad threshold, unknown key...)."""


@dataclass(frozen=True, eq=False)
class EvalSpec:
    name: str
    models: tuple[str, ...]
    prompt: str | None = None  # as written in the marker, for messages
    prompt_path: Path | None = None
    # an Agents SDK agent as "package.module:name": the test's completion is its run
    agent: str | None = None
    # the API the agent's model calls go to: "responses", or "chat" (Chat Completions, for
    # servers without the Responses API such as llama.cpp's)
    agent_api: str = "responses"
    dataset: str | None = None
    dataset_path: Path | None = None
    threshold: float | None = None
    samples: int = 1
    schema: type[BaseModel] | None = None
    skipped_models: tuple[str, ...] = ()
    graders: tuple[Grader, ...] = ()
    fail_on: tuple[str, ...] = ()
    strict: bool = False
    # the marker's calibration policy, as recorded on each case (None: the config's)
    calibration: dict[str, float] | None = None
    # request parameters over the prompt file's (the marker's params=, a sweep's value)
    params: dict[str, Any] | None = None
    # the marker's sweep= (dotted parameter path -> values); each value is a variant
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    # which sweep value this spec is ("reasoning.effort=low"); "" when not swept
    variant: str = ""

    @functools.cached_property
    def fingerprint(self) -> dict[str, str]:
        """Short hashes of what defines the eval, so a changed baseline can be flagged."""
        out: dict[str, str] = {}
        for key, path in (("prompt", self.prompt_path), ("dataset", self.dataset_path)):
            if path is not None and path.is_file():
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        if self.params:
            out["params"] = hashlib.sha256(
                json.dumps(self.params, sort_keys=True, default=str).encode()
            ).hexdigest()[:12]
        if self.graders:
            described = [_describe(g) for g in self.graders]
            out["graders"] = hashlib.sha256(
                json.dumps(described, sort_keys=True, default=str).encode()
            ).hexdigest()[:12]
        return out

    @property
    def pending_reason(self) -> str | None:
        """Why the eval cannot run yet: its prompt file is not written."""
        if self.prompt_path is not None and not self.prompt_path.exists():
            return f"prompt not written yet: {self.prompt}"
        return None


def _describe(grader: Grader) -> object:
    try:
        return grader.to_openai()
    except GraderError:  # a Python function: its name is what we can compare
        return {"type": grader.type, "name": grader.label}


def merge_marker_kwargs(kwargs_closest_first: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Closest marker wins key by key (function over class over module)."""
    merged: dict[str, Any] = {}
    for kwargs in reversed(kwargs_closest_first):
        merged.update(kwargs)
    return merged


def resolve_path(value: str, test_dir: Path, rootdir: Path) -> Path:
    """Relative to the test file's folder; else to rootdir, where projects keep data/."""
    path = Path(value)
    if path.is_absolute():
        return path
    local = test_dir / path
    if local.exists() or not (rootdir / path).exists():
        return local
    return rootdir / path


def build_spec(
    kwargs: Mapping[str, Any],
    *,
    default_name: str,
    selected_models: Sequence[str],
    test_dir: Path,
    rootdir: Path,
    named_graders: Mapping[str, Grader] | None = None,
) -> EvalSpec:
    unknown = sorted(set(kwargs) - set(MARKER_KEYS))
    if unknown:
        raise EvalSpecError(
            f"unknown eval marker argument(s) {', '.join(unknown)}; known: {', '.join(MARKER_KEYS)}"
        )
    threshold = kwargs.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise EvalSpecError(f"threshold must be a number in [0, 1], got {threshold!r}")
        if not 0 <= threshold <= 1:
            raise EvalSpecError(f"threshold must be within [0, 1], got {threshold}")
    samples = kwargs.get("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise EvalSpecError(f"samples must be a whole number >= 1, got {samples!r}")
    name = kwargs.get("name") or default_name
    if not isinstance(name, str):
        raise EvalSpecError(f"name must be a string, got {name!r}")
    models, skipped = _models(kwargs.get("models"), selected_models)
    prompt = kwargs.get("prompt")
    dataset = kwargs.get("dataset")
    for key, value in (("prompt", prompt), ("dataset", dataset)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise EvalSpecError(f"{key} must be a path, got {value!r}")
    agent = kwargs.get("agent")
    if agent is not None and (not isinstance(agent, str) or not _AGENT_REF.fullmatch(agent)):
        raise EvalSpecError(
            f"agent must name an Agents SDK agent as 'package.module:name', got {agent!r}"
        )
    agent_api = kwargs.get("agent_api", "responses")
    if agent_api not in ("responses", "chat"):
        raise EvalSpecError(f"agent_api must be 'responses' or 'chat', got {agent_api!r}")
    if "agent_api" in kwargs and agent is None:
        raise EvalSpecError("agent_api= chooses the API of an agent= eval: add agent=...")
    schema = kwargs.get("schema")
    if schema is not None and not hasattr(schema, "model_validate"):
        raise EvalSpecError(f"schema must be a pydantic model class, got {schema!r}")
    declared = kwargs.get("graders") or ()
    if not isinstance(declared, (list, tuple)):
        declared = (declared,)
    try:
        graders = tuple(as_grader(g, named_graders) for g in declared)
    except GraderError as exc:
        raise EvalSpecError(str(exc)) from None
    fail_on = kwargs.get("fail_on") or ()
    if isinstance(fail_on, str):
        fail_on = (fail_on,)

    try:
        for expression in fail_on:
            parse_gate(expression)
    except GateError as exc:
        raise EvalSpecError(str(exc)) from None
    strict = kwargs.get("strict", False)
    if not isinstance(strict, bool):
        raise EvalSpecError(f"strict must be True or False, got {strict!r}")
    try:
        policy = calibration_policy(kwargs.get("calibration"), "eval marker")
    except GateError as exc:
        raise EvalSpecError(str(exc)) from None
    params, sweep = _params(kwargs.get("params"), kwargs.get("sweep"))
    if (params or sweep) and (prompt is None or agent is not None):
        raise EvalSpecError(
            "params= and sweep= shape the declared prompt's request: add prompt=... (an "
            "agent= eval's model settings are the agent's own: set them on the agent)"
        )
    if graders and prompt is None and agent is None:
        raise EvalSpecError(
            "graders= grade the declared prompt's (or agent's) completion: add prompt=... "
            "or agent=... (or call grade() in the test body)"
        )
    return EvalSpec(
        name=name,
        models=models,
        prompt=None if prompt is None else os.fspath(prompt),
        agent=agent,
        agent_api=agent_api,
        prompt_path=None if prompt is None else resolve_path(os.fspath(prompt), test_dir, rootdir),
        dataset=None if dataset is None else os.fspath(dataset),
        dataset_path=(
            None if dataset is None else resolve_path(os.fspath(dataset), test_dir, rootdir)
        ),
        threshold=None if threshold is None else float(threshold),
        samples=samples,
        schema=schema,
        skipped_models=skipped,
        graders=graders,
        fail_on=tuple(fail_on),
        strict=strict,
        calibration=(
            None if policy is None else {k: float(v) for k, v in policy.model_dump().items()}
        ),
        params=params,
        sweep=sweep,
    )


# fields of the request a marker cannot set: the prompt file and the run choose them
_NOT_PARAMS = frozenset({"model", "messages", "input", "stream"})


def _params(
    params: Any, sweep: Any
) -> tuple[dict[str, Any] | None, tuple[tuple[str, tuple[Any, ...]], ...]]:
    """The marker's ``params`` (a mapping of request fields) and ``sweep`` (a mapping of
    dotted request paths, such as ``reasoning.effort``, to the values to run)."""
    if params is not None:
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise EvalSpecError(f"params must be a mapping of request fields, got {params!r}")
        bad = sorted(_NOT_PARAMS & set(params))
        if bad:
            raise EvalSpecError(f"params cannot set {', '.join(bad)}: the prompt and run do")
    if sweep is None or (isinstance(sweep, (tuple, list, Mapping)) and not sweep):
        return (dict(params) if params else None), ()
    if not isinstance(sweep, Mapping):
        raise EvalSpecError(
            "sweep must map request paths to the values to run, e.g. "
            f"sweep={{'reasoning.effort': ['low', 'high']}}, got {sweep!r}"
        )
    out = []
    for path, values in sweep.items():
        if not isinstance(path, str) or not all(path.split(".")):
            raise EvalSpecError(f"sweep: {path!r} is not a request path like 'reasoning.effort'")
        if path.split(".")[0] in _NOT_PARAMS:
            raise EvalSpecError(f"sweep cannot vary {path!r}: the prompt and run set it")
        if not isinstance(values, (list, tuple)) or not values:
            raise EvalSpecError(f"sweep[{path!r}] must be a non-empty list of values")
        labels = [_label(value, index) for index, value in enumerate(values)]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise EvalSpecError(f"sweep[{path!r}] lists {', '.join(twice)} more than once")
        out.append((path, tuple(values)))
    return (dict(params) if params else None), tuple(out)


def variants(spec: EvalSpec) -> list[EvalSpec]:
    """One spec per combination of the sweep's values (the spec itself when it sweeps
    nothing), each its own eval named ``name[path=value]``: an eval's summary row, verdict
    and comparison are then one per value, as the sweep asks."""
    if not spec.sweep:
        return [spec]
    labelled = [
        [(path, value, _label(value, index)) for index, value in enumerate(values)]
        for path, values in spec.sweep
    ]
    out = []
    for combination in itertools.product(*labelled):
        params = dict(spec.params or {})
        for path, value, _ in combination:
            _set_path(params, path.split("."), value)
        variant = ",".join(f"{path}={label}" for path, _, label in combination)
        out.append(
            dataclasses.replace(
                spec, name=f"{spec.name}[{variant}]", params=params, variant=variant
            )
        )
    return out


def _label(value: Any, index: int) -> str:
    """A sweep value as it names its variant: itself when short and plain, a mapping's
    ``name`` or ``type`` (a ``text.format``), else its position."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = json.dumps(value) if not isinstance(value, str) else value
        if len(text) <= 40 and all(c.isalnum() or c in "-_.:" for c in text):
            return text
    if isinstance(value, Mapping):
        for key in ("name", "type"):
            if isinstance(value.get(key), str):
                return f"{value[key]}#{index}"
    return f"#{index}"


def _set_path(params: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at a dotted path, copying the mappings on the way (not sharing them)."""
    head, *rest = path
    if not rest:
        params[head] = value
        return
    child = params.get(head)
    child = dict(child) if isinstance(child, Mapping) else {}
    params[head] = child
    _set_path(child, rest, value)


def _models(marker_models: Any, selected: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Selected models narrowed by the marker's ``models``; a marker alone selects."""
    if marker_models is None:
        if not selected:
            raise EvalSpecError(
                "no model selected: pass --eval-models MODEL[,MODEL...] or set "
                "models = [...] in [tool.modelopt]"
            )
        return tuple(selected), ()
    if isinstance(marker_models, str):
        marker_models = [marker_models]
    if not isinstance(marker_models, (list, tuple)) or not all(
        isinstance(m, str) for m in marker_models
    ):
        raise EvalSpecError(f"models must be a list of model names, got {marker_models!r}")
    if not selected:
        return tuple(marker_models), ()
    kept = tuple(m for m in selected if m in marker_models)
    return kept, tuple(m for m in marker_models if m not in selected)


@dataclass(frozen=True, slots=True)  # one per test item: no __dict__ each
class EvalParam:
    """The value behind one test item: which eval, model, case and sample it is."""

    spec: EvalSpec
    model: str
    case: Case | None = None
    sample: int = 0

    @property
    def id(self) -> str:
        parts = [self.model]
        if self.spec.variant:
            parts.append(self.spec.variant)
        if self.case is not None:
            parts.append(self.case.id)
        if self.spec.samples > 1:
            parts.append(f"s{self.sample}")
        return "-".join(parts)


def params_for(spec: EvalSpec, cases: Sequence[Case] | None) -> list[EvalParam]:
    """Models outermost, so one model's cases run (and fail) together."""
    return [
        EvalParam(spec, model, case, sample)
        for model in spec.models
        for case in (cases if cases is not None else [None])
        for sample in range(spec.samples)
    ]
