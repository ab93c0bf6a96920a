"""Prompt files: jinja2 templates rendered with each case, in a sandbox.

A ``.j2`` / ``.txt`` / ``.md`` file is one user message. A ``.yaml`` / ``.yml`` file holds
``messages`` (each ``content`` a template) and, beside it, model parameters
(temperature, max_tokens, response_format, tools, ...) plus an optional ``api``
(``chat``, the default, or ``responses``). Dataset rows are untrusted data, so templates
run in jinja2's ``SandboxedEnvironment`` with ``StrictUndefined``, within bounds of time and
size (``templating.py``): a missing field is an error that names itself, never an empty
string sent to a paying API. A case's values are substituted, never rendered themselves.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from ..templating import BoundedEnvironment
from ..templating import render as render_bounded

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

TEXT_SUFFIXES = {".j2", ".jinja", ".jinja2", ".txt", ".md"}
YAML_SUFFIXES = {".yaml", ".yml"}
ROLES = {"system", "developer", "user", "assistant"}
APIS = {"chat", "responses"}

_env = BoundedEnvironment(keep_trailing_newline=False)


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
    messages: list[tuple[str, jinja2.Template, str]]  # (role, template, template name)
    params: dict[str, Any] = field(default_factory=dict)
    api: str = "chat"

    def render(self, variables: Mapping[str, Any]) -> RenderedPrompt:
        context = {**variables, "case": variables}
        messages = []
        for role, template, name in self.messages:
            try:
                content = render_bounded(template, context)
            except jinja2.UndefinedError as exc:
                fields = ", ".join(sorted(str(k) for k in variables)) or "none"
                raise PromptError(
                    f"{_where(name, exc)}: {exc.message}; the case's fields are: {fields}"
                ) from None
            except jinja2.TemplateError as exc:
                raise PromptError(f"{_where(name, exc)}: {exc}") from None
            except Exception as exc:
                raise PromptError(f"{_where(name, exc)}: {type(exc).__name__}: {exc}") from None
            messages.append({"role": role, "content": content})
        return RenderedPrompt(messages=messages, params=dict(self.params), api=self.api)


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
    messages = []
    for index, message in enumerate(raw_messages):
        where = f"{display}#messages[{index}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise PromptError(f"{where}: each message needs exactly 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PromptError(f"{where}: role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise PromptError(f"{where}: content must be a string template")
        messages.append((role, _compile(content, where), where))
    return Prompt(display, messages, params=data, api=api)
