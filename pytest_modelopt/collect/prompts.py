"""Prompt files: jinja2 templates rendered with each case, in a sandbox.

A ``.j2`` / ``.txt`` / ``.md`` file is one user message. A ``.yaml`` / ``.yml`` file holds
``messages`` (each ``content`` a template, or a list of text and image parts whose text
and URLs are templates) and, beside it, model parameters
(temperature, max_tokens, response_format, tools, ...) plus an optional ``api``
(``chat``, the default, or ``responses``); parameters written in either API's shape are
sent in the shape of the file's ``api`` (``api_params``). Dataset rows are untrusted data,
so templates run in jinja2's ``SandboxedEnvironment`` with ``StrictUndefined``, within
bounds of time and size (``templating.py``): a missing field is an error that names
itself, never an empty string sent to a paying API. A case's values are substituted,
never rendered themselves. An image part's URL renders to an https URL, a data URL or a
path relative to the dataset file, which the request holds as a reference to the file's
path and hash until it is sent (``images.py``).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .. import images
from ..templating import BoundedEnvironment
from ..templating import render as render_bounded

TEXT_SUFFIXES = {".j2", ".jinja", ".jinja2", ".txt", ".md"}
YAML_SUFFIXES = {".yaml", ".yml"}
ROLES = {"system", "developer", "user", "assistant"}
APIS = {"chat", "responses"}

# request fields whose own fields are separate settings, merged one by one (request_params)
_MERGED = ("reasoning", "text")

_env = BoundedEnvironment(keep_trailing_newline=False)


# a content part of a message: ("text" or "image", its text or URL template, extra fields)
Part = tuple[str, jinja2.Template, dict[str, Any]]


class PromptError(Exception):
    """A prompt that cannot be loaded or rendered; the message names file, line and field."""


@dataclass(frozen=True)
class RenderedPrompt:
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    api: str = "chat"

    def request(self) -> dict[str, Any]:
        """The request body without the model, in the shape of the prompt's API."""
        if self.api == "responses":
            return {"input": self.messages, **self.params}
        return {"messages": self.messages, **self.params}


@dataclass
class Prompt:
    """A loaded prompt file; templates are compiled once and rendered per case."""

    display: str
    # (role, template or content parts, template name)
    messages: list[tuple[str, jinja2.Template | list[Part], str]]
    params: dict[str, Any] = field(default_factory=dict)
    api: str = "chat"

    def request_params(self, overrides: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
        """The file's parameters with an eval's own (its marker's ``params``, a sweep's
        value) over them, in the prompt's API's shape. A mapping under ``reasoning`` or
        ``text`` is merged field by field (a sweep over ``reasoning.effort`` keeps the
        file's ``reasoning.summary``); any other field is replaced whole."""
        if not overrides:
            return dict(self.params)
        merged = dict(self.params)
        for key, value in api_params(overrides, self.api, where).items():
            current = merged.get(key)
            if key in _MERGED and isinstance(current, Mapping) and isinstance(value, Mapping):
                value = {**current, **value}
            merged[key] = value
        return merged

    def render(
        self,
        variables: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        where: str = "eval marker params",
    ) -> RenderedPrompt:
        # the case by its fields, as ``case``, and as OpenAI's evals name it, ``item``
        # ({{ item.x }}), unless the case has a field of that name (which keeps its value)
        context = {"item": variables, **variables, "case": variables}
        messages = []
        for role, content, name in self.messages:
            if isinstance(content, list):
                parts = []
                for kind, template, extra in content:
                    value = _render(template, context, variables, name)
                    if kind == "image":
                        value = _image(value, variables, name)
                    parts.append(_part(kind, value, extra, self.api))
                messages.append({"role": role, "content": parts})
            else:
                messages.append(
                    {"role": role, "content": _render(content, context, variables, name)}
                )
        params = self.request_params(overrides, where)
        return RenderedPrompt(messages=messages, params=params, api=self.api)


def _render(
    template: jinja2.Template, context: Mapping[str, Any], variables: Mapping[str, Any], name: str
) -> str:
    try:
        return render_bounded(template, context)
    except jinja2.UndefinedError as exc:
        fields = ", ".join(sorted(str(k) for k in variables)) or "none"
        raise PromptError(
            f"{_where(name, exc)}: {exc.message}; the case's fields are: {fields}"
        ) from None
    except jinja2.TemplateError as exc:
        raise PromptError(f"{_where(name, exc)}: {exc}") from None
    except Exception as exc:
        raise PromptError(f"{_where(name, exc)}: {type(exc).__name__}: {exc}") from None


def _image(value: str, case: Mapping[str, Any], name: str) -> str:
    """An image part's rendered URL as the request carries it (``images.resolve``: a
    file relative to the case's dataset becomes a reference to its path and hash). A
    missing, unreadable or unknown image is an error naming the case's file, line and
    field, and the prompt's part."""
    source = getattr(case, "source", None)  # a dataset Case; a plain mapping has none
    try:
        return images.resolve(value, Path(source).parent if source else None)
    except images.ImageError as exc:
        field = next((k for k, v in case.items() if v == value), None)
        where = f"{_shown(source)}:{getattr(case, 'line', 0)}: " if source else ""
        if field is not None:
            where += f"field '{field}': "
        raise PromptError(f"{where}{exc} (the image of {name})") from None


def _shown(source: str) -> str:
    """A dataset's path as the user knows it: relative to the working directory."""
    relative = os.path.relpath(source)
    return source if relative.startswith("..") else relative


def _part(kind: str, value: str, extra: Mapping[str, Any], api: str) -> dict[str, Any]:
    """A rendered content part in ``api``'s shape."""
    if kind == "text":
        return {"type": "input_text" if api == "responses" else "text", "text": value}
    if api == "responses":  # the Responses API requires the detail
        return {"type": "input_image", "image_url": value, "detail": extra.get("detail", "auto")}
    return {"type": "image_url", "image_url": {"url": value, **extra}}


def _parts(content: list[Any], role: str, where: str) -> list[Part]:
    """A message's list of content parts, in either API's shape: text and images, each
    text and image URL a template."""
    if role == "assistant":
        raise PromptError(f"{where}: an assistant message's content must be a string template")
    parts: list[Part] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        image = part.get("image_url") if isinstance(part, dict) else None
        if kind in ("text", "input_text") and isinstance(part.get("text"), str):
            parts.append(("text", _compile(part["text"], at), {}))
        elif kind == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str):
            detail = {"detail": image["detail"]} if "detail" in image else {}
            parts.append(("image", _compile(image["url"], at), detail))
        elif kind == "input_image" and isinstance(image, str):
            detail = {"detail": part["detail"]} if "detail" in part else {}
            parts.append(("image", _compile(image, at), detail))
        else:
            raise PromptError(
                f"{at}: a content part is {{type: text, text: ...}} or an image "
                "({type: image_url, image_url: {url: ...}} or {type: input_image, "
                f"image_url: ...}}), got {part!r}"
            )
    return parts


def _where(name: str, exc: BaseException) -> str:
    """The template name with the line that failed, read from jinja's rewritten traceback."""
    line = getattr(exc, "lineno", None)
    if line is None:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == name:
                line = frame.lineno
    return f"{name}:{line}" if line else name


def _compile(source: str, name: str) -> jinja2.Template:
    """Compile with the template's name as its filename, so errors can point at a line."""
    try:
        code = _env.compile(source, name=name, filename=name)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{name}:{exc.lineno}: template syntax error: {exc.message}") from None
    # A plain dict of the (never changed) environment globals, not jinja's ChainMap over
    # them: every render copies the globals, and copying a ChainMap runs in Python.
    return _env.template_class.from_code(_env, code, dict(_env.globals), None)


def load_prompt(path: str | os.PathLike[str], *, display: str | None = None) -> Prompt:
    """Load and compile a prompt file (cached by path and modification time)."""
    resolved = Path(path)
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise PromptError(f"{display or path}: cannot read prompt file: {exc.strerror}") from None
    return _load_cached(str(resolved), stat.st_mtime_ns, stat.st_size, display or str(path))


_cache: dict[tuple[str, int, int, str], Prompt] = {}


def _load_cached(path: str, mtime: int, size: int, display: str) -> Prompt:
    key = (path, mtime, size, display)
    prompt = _cache.get(key)
    if prompt is None:
        prompt = _cache[key] = _parse(Path(path), display)
    return prompt


def _parse(path: Path, display: str) -> Prompt:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return Prompt(display, [("user", _compile(text.strip("\n"), display), display)])
    if suffix not in YAML_SUFFIXES:
        known = ", ".join(sorted(TEXT_SUFFIXES | YAML_SUFFIXES))
        raise PromptError(f"{display}: unknown prompt file type {suffix!r} (use one of {known})")
    import yaml  # only for YAML prompt files: PyYAML costs ~12 ms to import

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PromptError(f"{display}{line}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise PromptError(f"{display}: expected a mapping with a 'messages' list")
    data = dict(data)
    raw_messages = data.pop("messages", None)
    api = data.pop("api", "chat")
    if api not in APIS:
        raise PromptError(f"{display}: api must be one of {sorted(APIS)}, got {api!r}")
    if "model" in data:
        raise PromptError(
            f"{display}: 'model' does not belong in a prompt file; choose models with "
            "--eval-models or [tool.modelopt] models"
        )
    if not isinstance(raw_messages, list) or not raw_messages:
        raise PromptError(f"{display}: 'messages' must be a non-empty list of {{role, content}}")
    messages: list[tuple[str, jinja2.Template | list[Part], str]] = []
    for index, message in enumerate(raw_messages):
        where = f"{display}#messages[{index}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise PromptError(f"{where}: each message needs exactly 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PromptError(f"{where}: role must be one of {sorted(ROLES)}, got {role!r}")
        if isinstance(content, list) and content:
            messages.append((role, _parts(content, role, where), where))
            continue
        if not isinstance(content, str):
            raise PromptError(
                f"{where}: content must be a string template or a list of content parts"
            )
        messages.append((role, _compile(content, where), where))
    return Prompt(display, messages, params=api_params(data, api, display), api=api)


# Request fields one API has and the other lacks (openai-openapi.yaml's CreateResponse and
# CreateChatCompletionRequest). Those with a counterpart are translated (``api_params``);
# the rest are refused by name, never sent to an API that would reject or ignore them.
CHAT_ONLY = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "modalities", "n", "prediction", "presence_penalty", "seed", "stop",
        "web_search_options",
    }
)  # fmt: skip
RESPONSES_ONLY = frozenset(
    {
        "background", "context_management", "conversation", "include", "instructions",
        "max_tool_calls", "previous_response_id", "prompt", "truncation",
    }
)  # fmt: skip
_NESTED_TOOLS = ("function", "custom")  # chat nests these tools' fields under their type


def api_params(params: Mapping[str, Any], api: str, where: str) -> dict[str, Any]:
    """The request parameters in ``api``'s shape, so one prompt file serves both APIs.

    Chat-shaped function tools, ``tool_choice``, ``max_tokens``, ``reasoning_effort`` and
    ``response_format`` become the Responses API's ``tools``, ``tool_choice``,
    ``max_output_tokens``, ``reasoning.effort`` and ``text.format`` (and back for chat);
    a field the other API has no counterpart for is refused, naming ``where`` and the
    field. Idempotent: parameters already in ``api``'s shape come back equal.
    """
    out = dict(params)
    for key in ("messages", "input", "model", "stream"):
        if key in out:
            raise PromptError(f"{where}: {key!r} cannot be set as a parameter ({_OWN[key]})")
    other, own, say = (
        (CHAT_ONLY, "Chat Completions", "the Responses API")
        if api == "responses"
        else (RESPONSES_ONLY, "the Responses API", "Chat Completions")
    )
    foreign = sorted(other & set(out))
    if foreign:
        raise PromptError(
            f"{where}: {', '.join(map(repr, foreign))} belong(s) to {own}, and {say} has no "
            f"such field: remove it, or set api: {'chat' if api == 'responses' else 'responses'}"
        )
    if api == "responses":
        _move(out, ("max_tokens", "max_completion_tokens"), "max_output_tokens", where)
        if "reasoning_effort" in out:
            _nest(out, "reasoning", "effort", out.pop("reasoning_effort"), where)
        if "response_format" in out:
            _nest(out, "text", "format", _responses_format(out.pop("response_format")), where)
    else:
        _move(out, ("max_output_tokens",), "max_completion_tokens", where)
        _unnest(out, "reasoning", {"effort": "reasoning_effort"}, where)
        text = out.get("text")
        if isinstance(text, Mapping) and isinstance(text.get("format"), Mapping):
            text = {**text, "format": _chat_format(text["format"])}
            out["text"] = text
        _unnest(out, "text", {"format": "response_format", "verbosity": "verbosity"}, where)
    if "tools" in out:
        out["tools"] = _tools(out["tools"], api, f"{where}#tools")
    if isinstance(out.get("tool_choice"), Mapping):
        out["tool_choice"] = _tool_choice(out["tool_choice"], api)
    return out


_OWN = {
    "messages": "write the prompt's messages under 'messages'",
    "input": "write the prompt's messages under 'messages'",
    "model": "choose models with --eval-models or [tool.modelopt] models",
    "stream": "pytest-modelopt reads whole responses",
}


def _move(out: dict[str, Any], sources: tuple[str, ...], target: str, where: str) -> None:
    for source in sources:
        if source in out:
            value = out.pop(source)
            if target in out and out[target] != value:
                raise PromptError(
                    f"{where}: {source!r} and {target!r} disagree ({value!r} vs "
                    f"{out[target]!r}): keep one"
                )
            out[target] = value


def _nest(out: dict[str, Any], parent: str, key: str, value: Any, where: str) -> None:
    current = out.get(parent) or {}
    if not isinstance(current, Mapping):
        raise PromptError(f"{where}: {parent!r} must be a mapping, got {current!r}")
    if key in current and current[key] != value:
        raise PromptError(f"{where}: '{parent}.{key}' is set twice, differently: keep one")
    out[parent] = {**current, key: value}


def _unnest(out: dict[str, Any], parent: str, keys: Mapping[str, str], where: str) -> None:
    """Chat's flat fields from the Responses API's nested ``parent`` mapping."""
    if parent not in out:
        return
    nested = out.pop(parent)
    if not isinstance(nested, Mapping):
        raise PromptError(f"{where}: {parent!r} must be a mapping, got {nested!r}")
    for key, value in nested.items():
        if key not in keys:
            raise PromptError(
                f"{where}: '{parent}.{key}' belongs to the Responses API, and Chat "
                "Completions has no such field: remove it, or set api: responses"
            )
        out.setdefault(keys[key], value)
        if out[keys[key]] != value:
            raise PromptError(f"{where}: '{parent}.{key}' and {keys[key]!r} disagree: keep one")


def _responses_format(value: Any) -> Any:
    """Chat's ``response_format`` as the Responses API's ``text.format``."""
    if isinstance(value, Mapping) and isinstance(value.get("json_schema"), Mapping):
        return {"type": value.get("type", "json_schema"), **value["json_schema"]}
    return value


def _chat_format(value: Mapping[str, Any]) -> Any:
    """The Responses API's ``text.format`` as chat's ``response_format``."""
    if value.get("type") == "json_schema" and "json_schema" not in value:
        return {
            "type": "json_schema",
            "json_schema": {k: v for k, v in value.items() if k != "type"},
        }
    return dict(value)


def _tools(tools: Any, api: str, where: str) -> list[Any]:
    if not isinstance(tools, list):
        raise PromptError(f"{where}: 'tools' must be a list of tools, got {tools!r}")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("type"), str):
            raise PromptError(f"{where}[{index}]: each tool is a mapping with a 'type'")
        kind = tool["type"]
        nested = tool.get(kind)
        if kind in _NESTED_TOOLS and isinstance(nested, Mapping):  # chat's shape
            if api == "responses":
                flat = {"type": kind, **nested}
                if kind == "function":  # the Responses API requires both; chat's defaults
                    flat.setdefault("strict", False)
                    flat.setdefault("parameters", {"type": "object", "properties": {}})
                tool = flat
        elif kind in _NESTED_TOOLS and "name" in tool:  # the Responses API's shape
            if api == "chat":
                tool = {"type": kind, kind: {k: v for k, v in tool.items() if k != "type"}}
        elif api == "chat":
            raise PromptError(
                f"{where}[{index}]: a {kind!r} tool is one of the Responses API's built-in "
                "tools; Chat Completions takes function tools only: set api: responses"
            )
        out.append(dict(tool))
    return out


def _tool_choice(choice: Mapping[str, Any], api: str) -> dict[str, Any]:
    kind = choice.get("type")
    nested = choice.get(kind) if isinstance(kind, str) else None
    if kind in _NESTED_TOOLS and isinstance(nested, Mapping) and api == "responses":
        return {"type": kind, "name": nested.get("name")}
    if kind in _NESTED_TOOLS and "name" in choice and api == "chat":
        return {"type": kind, kind: {"name": choice["name"]}}
    return dict(choice)
