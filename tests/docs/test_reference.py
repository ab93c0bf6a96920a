"""Every public name is documented once in docs/reference.md."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pytest_modelopt import hookspecs, plugin
from pytest_modelopt.cli import build_parser
from pytest_modelopt.collect.marker import MARKER_KEYS
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


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command of the ``modelopt`` parser, as the words that name it."""
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += _commands(child, (*path, name))
    return out


def _command_rows() -> dict[str, str]:
    """The rows of the reference's `modelopt` command table, by the command they start with."""
    section = REFERENCE.split("## The `modelopt` command", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `modelopt ([\w-]+)", line)
        if match:
            rows[match.group(1)] = line
    return rows


COMMANDS = [(path, parser) for path, parser in _commands(build_parser()) if path]


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_command_and_its_options_are_documented(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    """Each command has its row, which names its subcommands, options and choices."""
    rows = _command_rows()
    assert path[0] in rows, f"no row for `modelopt {path[0]}`"
    row = rows[path[0]]
    for word in path[1:]:
        assert word in row
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs:
            assert f"{longs[0]}" in row, f"`modelopt {' '.join(path)} {longs[0]}` undocumented"
        elif action.choices and not isinstance(action, argparse._SubParsersAction):
            for choice in action.choices:
                assert str(choice) in row, f"`modelopt {' '.join(path)} {choice}` undocumented"


def test_the_version_option_is_documented() -> None:
    assert "`modelopt --version`" in REFERENCE


@pytest.mark.parametrize("fixture", [f for f in plugin.__all__ if not f.startswith("_")])
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
