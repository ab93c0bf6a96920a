"""``modelopt init`` and ``modelopt --version``: the first five minutes of a new user.

An empty project gets a starting point; the first ``pytest`` reports the eval pending; the
prompt the summary asks for, written as it says, turns it into a verdict against the local
OpenAI-compatible server. Nothing is ever overwritten.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pytest_modelopt.cli.init import CONFIG, SHIPPED, SKILL_NAME, shipped
from pytest_modelopt.config import load_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    import pytest

    from tests.support.fake_openai import FakeOpenAI

from tests.support.cli import modelopt

ROOT = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".modelopt" not in p.parts and "__pycache__" not in p.parts
    }


def prompt_from_summary(stdout: str) -> tuple[str, str]:
    """The prompt file the summary says to write, and the text it shows for it."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  write "))
    path = lines[start].split()[1].rstrip(",")
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("      "):
            break
        body.append(line[6:])
    return path, "\n".join(body) + "\n"


def test_init_then_pytest_is_pending_then_a_prompt_gives_a_verdict(
    pytester: pytest.Pytester, server: FakeOpenAI, mode: list[str]
) -> None:
    root = pytester.path
    done = modelopt(root, "init")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for path in ("pyproject.toml", "tests/evals/test_triage.py", "tests/evals/data/triage.jsonl"):
        assert re.search(rf"^  wrote +{re.escape(path)}$", out, re.MULTILINE), out
    assert "  pytest tests/evals\n" in out
    assert not (root / "prompts").exists()

    first = pytester.runpytest("-p", "no:cacheprovider", *mode)
    assert first.ret == 0
    assert first.parseoutcomes() == {"pending": 5}
    text = first.stdout.str()
    assert "PENDING eval test_triage::test_category: prompt not written yet" in text
    assert server.requests == []

    path, body = prompt_from_summary(out)
    assert path == "prompts/triage.yaml"
    (root / "prompts").mkdir()
    (root / path).write_text(body)
    for category, word in [("billing", "charged"), ("billing", "refund"), ("bug", "crashes")]:
        server.reply(category, contains=word)
    server.reply("account", contains="email")
    server.reply("shipping", contains="parcel")

    second = pytester.runpytest("-p", "no:cacheprovider", *mode)
    text = second.stdout.str()
    assert second.ret == 0, text
    assert re.search(r"^test_triage::test_category +gpt-4\.1-mini +100\.0%.*PASS", text, re.M)
    host = server.base_url.split("//")[1].split("/")[0]
    assert f"base URL host {host} (environment OPENAI_BASE_URL)" in text
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 5


def test_init_twice_changes_nothing_and_says_so(tmp_path: Path) -> None:
    first = modelopt(tmp_path, "init", "--github", "--skill")
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path)
    second = modelopt(tmp_path, "init", "--github", "--skill")
    assert second.returncode == 0, second.stderr
    assert snapshot(tmp_path) == before
    listed = [line for line in second.stdout.splitlines() if line.startswith("  ") and "  " in line]
    actions = [line.split()[0] for line in listed[: len(before)]]
    assert set(actions) == {"skipped"}
    assert "nothing to do: the starting point is there" in second.stdout


def test_an_existing_pyproject_keeps_its_bytes_and_gets_the_table_appended(tmp_path: Path) -> None:
    original = (
        b'[project]\nname = "app"   # odd  spacing kept\nversion="1"\n\n'
        b"[tool.ruff]\nline-length = 99\n\n[tool.pytest.ini_options]\naddopts = '-q'"
    )  # no newline at the end
    (tmp_path / "pyproject.toml").write_bytes(original)
    done = modelopt(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^  appended +pyproject\.toml", done.stdout, re.MULTILINE)
    after = (tmp_path / "pyproject.toml").read_bytes()
    assert after == original + b"\n" + CONFIG.encode()
    data = tomllib.loads(after.decode())
    assert data["tool"]["ruff"] == {"line-length": 99}
    assert load_settings(tmp_path, environ={}).models == ["gpt-4.1-mini"]


def test_an_existing_tool_modelopt_table_is_left_alone(tmp_path: Path) -> None:
    text = '[tool.modelopt]\nmodels = ["mine"]\n'
    (tmp_path / "pyproject.toml").write_text(text)
    done = modelopt(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert "skipped  pyproject.toml" in done.stdout
    assert "has [tool.modelopt]: kept as it is" in done.stdout
    assert (tmp_path / "pyproject.toml").read_text() == text


def test_a_pyproject_that_cannot_be_read_stops_init_before_any_write(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname = 1\n")
    done = modelopt(tmp_path, "init")
    assert done.returncode == 2
    assert "pyproject.toml cannot be read" in done.stderr
    assert "nothing was written" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]


def test_an_inline_tool_table_is_refused_with_the_table_to_add(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("tool = {black = {line-length = 88}}\n")
    done = modelopt(tmp_path, "init")
    assert done.returncode == 2
    assert "add this table by hand" in done.stderr
    assert (tmp_path / "pyproject.toml").read_text() == "tool = {black = {line-length = 88}}\n"


def test_gitignore_gets_only_the_lines_it_lacks(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc\n.modelopt/runs/")  # no newline at the end
    done = modelopt(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["*.pyc", ".modelopt/runs/"]
    assert lines.count(".modelopt/runs/") == 1
    assert ".modelopt/saved/" in lines
    assert ".modelopt/cache/" not in lines  # recorded answers may be committed


def test_existing_files_are_skipped_never_overwritten(tmp_path: Path) -> None:
    test = tmp_path / "tests" / "evals" / "test_triage.py"
    test.parent.mkdir(parents=True)
    test.write_text("# mine\n")
    done = modelopt(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert test.read_text() == "# mine\n"
    assert re.search(r"^  skipped +tests/evals/test_triage\.py +\(exists", done.stdout, re.M)
    assert (tmp_path / "tests" / "evals" / "data" / "triage.jsonl").is_file()


def test_init_from_a_subdirectory_writes_at_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    sub = tmp_path / "src" / "app"
    sub.mkdir(parents=True)
    done = modelopt(sub, "init", "--name", "summaries")
    assert done.returncode == 0, done.stderr
    assert f"project {tmp_path.resolve()}" in done.stdout
    assert (tmp_path / "tests" / "evals" / "test_summaries.py").is_file()
    assert not (sub / "tests").exists()


def test_a_bad_name_is_refused(tmp_path: Path) -> None:
    done = modelopt(tmp_path, "init", "--name", "../x")
    assert done.returncode == 2
    assert "--name '../x'" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_github_writes_the_shipped_workflows(tmp_path: Path) -> None:
    done = modelopt(tmp_path, "init", "--github")
    assert done.returncode == 0, done.stderr
    workflows = tmp_path / ".github" / "workflows"
    examples = ROOT / "examples" / "github"
    assert (workflows / "evals.yml").read_text() == (examples / "pr-gate.yml").read_text()
    comment = (workflows / "evals-comment.yml").read_text()
    assert comment == (examples / "pr-comment.yml").read_text()
    uses = yaml.safe_load((workflows / "evals.yml").read_text())["jobs"]["evals"]["steps"][1]
    assert uses["uses"] == "pytest-modelopt/pytest-modelopt@v1"


def test_the_wheel_ships_what_init_writes() -> None:
    """pyproject.toml's force-include puts each file where ``shipped()`` looks in a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert included == {
        source: f"pytest_modelopt/cli/shipped/{name}" for name, source in SHIPPED.items()
    }
    for name in SHIPPED:
        source = (ROOT / SHIPPED[name]).read_text()
        expected = "".join(
            line for line in source.splitlines(keepends=True) if not line.startswith("<!-- docs:")
        )
        assert shipped(name) == expected
        assert "<!-- docs:" not in shipped(name)  # the docs runner's directives stay home


def test_the_skill_follows_the_agent_skills_format(tmp_path: Path) -> None:
    done = modelopt(tmp_path, "init", "--skill")
    assert done.returncode == 0, done.stderr
    skill = tmp_path / ".agents" / "skills" / SKILL_NAME / "SKILL.md"
    _, front, body = skill.read_text().split("---\n", 2)
    meta = yaml.safe_load(front)
    assert set(meta) == {"name", "description"}
    assert meta["name"] == skill.parent.name
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", meta["name"])
    assert len(meta["name"]) <= 64
    assert 0 < len(meta["description"]) <= 1024
    assert body.strip() == shipped("AGENTS.md").strip()
    assert body.lstrip().startswith("# Writing LLM evals with pytest-modelopt\n")
    assert (tmp_path / "tests" / "evals" / "AGENTS.md").read_text() == body.lstrip("\n")


def test_version_is_the_installed_distributions() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == f"pytest-modelopt {importlib.metadata.version('pytest-modelopt')}\n"
