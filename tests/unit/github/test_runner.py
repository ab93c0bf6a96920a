"""The Actions runner's side: outputs and workflow commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_modelopt.github.runner import workflow_command, write_outputs

if TYPE_CHECKING:
    from pathlib import Path


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's reading of GITHUB_OUTPUT: ``name=value`` and ``name<<DELIM ... DELIM``."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            assert delimiter, "an empty delimiter"
            end = lines.index(delimiter, i + 1)  # ValueError: the block never ends
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
    return values


def test_write_outputs_round_trips_any_value(tmp_path: Path) -> None:
    path = tmp_path / "out"
    tricky = "line one\nEOF\nname=value\n<<\n"
    write_outputs(path, {"a": tricky, "b": ""})
    assert parse_github_output(path.read_text()) == {"a": tricky, "b": ""}


def test_workflow_commands_cannot_be_injected() -> None:
    line = workflow_command("notice", "a\n::error::forged\r100%", title="x: y, z")
    assert line == "::notice title=x%3A y%2C z::a%0A::error::forged%0D100%25"
