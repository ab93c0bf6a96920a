"""Every public name is documented once in docs/reference.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_modelopt import hookspecs
from pytest_modelopt.collect.spec import MARKER_KEYS
from pytest_modelopt.config import Settings, cli_fields

ROOT = Path(__file__).resolve().parents[2]


REFERENCE = (ROOT / "docs" / "reference.md").read_text()


@pytest.mark.parametrize("option", [option for _, option, _, _ in cli_fields()])
def test_every_option_is_documented(option: str) -> None:
    assert f"`{option} " in REFERENCE


@pytest.mark.parametrize("key", [f.alias or n for n, f in Settings.model_fields.items()])
def test_every_config_key_is_documented(key: str) -> None:
    assert f"| `{key}` |" in REFERENCE


@pytest.mark.parametrize("argument", MARKER_KEYS)
def test_every_marker_argument_is_documented(argument: str) -> None:
    assert f"| `{argument}` |" in REFERENCE


@pytest.mark.parametrize("fixture", ["llm", "model", "completion", "case", "grade", "finetune"])
def test_every_fixture_is_documented(fixture: str) -> None:
    assert f"| `{fixture}` |" in REFERENCE


@pytest.mark.parametrize("hook", [n for n in dir(hookspecs) if n.startswith("pytest_modelopt_")])
def test_every_hook_is_documented(hook: str) -> None:
    assert f"`{hook}(" in REFERENCE


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/run-examples" in readme
    assert "./scripts/test" in readme
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
