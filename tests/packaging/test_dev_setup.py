"""The project's own tools live in dependency groups, not in extras a user could install."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tests.support.packaging import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from pathlib import Path

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dev_is_a_group_of_the_tool_groups_and_not_an_extra() -> None:
    groups = PYPROJECT["dependency-groups"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "dev" not in extras
    assert groups["dev"] == [{"include-group": g} for g in ("test", "lint", "package")]
    tools = " ".join(r for g in ("test", "lint", "package") for r in groups[g])
    for tool in ("pytest-xdist", "ruff", "mypy", "check-jsonschema", "zizmor", "build", "twine"):
        assert tool in tools, tool


def test_no_extra_pins_an_exact_version() -> None:
    """An exact pin in a library's extra fights the user's own environment; the versions
    our scripts install are pinned in scripts/constraints-local.txt instead."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    pinned = [r for requirements in extras.values() for r in requirements if "==" in r]
    assert pinned == []
    constraints = (ROOT / "scripts" / "constraints-local.txt").read_text()
    assert "\ntorch==" in constraints


def test_setup_venv_refuses_a_name_that_is_neither_group_nor_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "setup-venv"), "dev,locall"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODELOPT_VENV": str(tmp_path / "v")},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "'locall' is neither a dependency group nor an extra of pyproject.toml" in done.stderr
    assert "groups: test lint package dev" in done.stderr
    assert "extras: xdist agents local similarity train" in done.stderr
    assert not (tmp_path / "v").exists()  # refused before anything was made
