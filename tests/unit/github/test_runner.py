"""The Actions runner's side: outputs and workflow commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_modelopt.github.runner import workflow_command, write_outputs
from tests.support.github_output import parse_github_output

if TYPE_CHECKING:
    from pathlib import Path


def test_write_outputs_round_trips_any_value(tmp_path: Path) -> None:
    path = tmp_path / "out"
    tricky = "line one\nEOF\nname=value\n<<\n"
    write_outputs(path, {"a": tricky, "b": ""})
    assert parse_github_output(path.read_text()) == {"a": tricky, "b": ""}


def test_workflow_commands_cannot_be_injected() -> None:
    line = workflow_command("notice", "a\n::error::forged\r100%", title="x: y, z")
    assert line == "::notice title=x%3A y%2C z::a%0A::error::forged%0D100%25"
