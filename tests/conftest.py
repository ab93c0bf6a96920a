from __future__ import annotations

import contextlib
import importlib
import json
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.cli import modelopt
from tests.support.fake_openai import FakeOpenAI

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator
    from pathlib import Path

pytest_plugins = ["pytester"]

# pytester's in-process runs forget modules first imported inside them, and a C extension
# such as numpy (pulled in by rouge-score and nltk) cannot be imported twice in a process:
# load them once here, before any inner run.
for _module in ("numpy", "rouge_score.rouge_scorer", "nltk"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

TEST_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def server(_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The local OpenAI-compatible server, reset, with the env pointing every client at it."""
    _server.reset()
    _server.known_models = None
    _server.require_key = False
    monkeypatch.setenv("OPENAI_BASE_URL", _server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    for name in list(__import__("os").environ):
        if name.startswith("MODELOPT_"):
            monkeypatch.delenv(name)
    return _server


@pytest.fixture(params=["serial", "xdist"])
def mode(request: pytest.FixtureRequest) -> list[str]:
    """Integration tests run serially and under pytest-xdist with two workers."""
    return ["-n", "2"] if request.param == "xdist" else ["-p", "no:xdist"]


class Project:
    """A throwaway eval project inside pytester's directory."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def config(self, **settings: Any) -> None:
        lines = ["[tool.modelopt]"]
        for key, value in settings.items():
            lines.append(f"{key} = {json.dumps(value)}")
        (self.path / "pyproject.toml").write_text("\n".join(lines) + "\n")

    def file(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def dataset(self, name: str, rows: list[dict[str, Any]]) -> Path:
        return self.file(name, "".join(json.dumps(r) + "\n" for r in rows))

    def test(self, source: str, name: str = "test_suite.py") -> Path:
        return self.file(name, source)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:cacheprovider", "-rA", *args)

    def modelopt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `modelopt` command in this project, as a user runs it (no terminal)."""
        return modelopt(self.path, *args)

    def run_dir(self) -> Path:
        runs = self.path / ".modelopt" / "runs"
        return runs / (runs / "latest").read_text().strip()

    def cases(self) -> list[dict[str, Any]]:
        out = []
        for file in sorted((self.run_dir() / "cases").glob("*.jsonl")):
            out += [json.loads(line) for line in file.read_text().splitlines() if line]
        return sorted(out, key=lambda c: (c["eval"], c["model"], c["case_id"], c["sample"]))

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir() / "summary.json").read_text())
        return data


@pytest.fixture
def project(
    pytester: pytest.Pytester, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Project:
    # a wide terminal, so that the tables keep every column (tests of the narrow table set
    # their own width)
    monkeypatch.setenv("COLUMNS", "200")
    proj = Project(pytester)
    proj.config(models=["gpt-4.1-mini"])
    return proj
