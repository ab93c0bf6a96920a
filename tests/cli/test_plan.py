"""``modelopt plan`` as a user runs it: the number it prints is the exact plan for the
project's own gate settings, and an impossible plan is one clear line and exit 2."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pytest_modelopt.verdict.power import family_alpha, flips, plan

if TYPE_CHECKING:
    from tests.conftest import Project


def _cases(stdout: str) -> int:
    found = re.match(r"modelopt plan: ([\d,]+) paired cases\n", stdout)
    assert found, stdout
    return int(found[1].replace(",", ""))


def test_plan_reads_the_gate_settings_of_the_project(project: Project) -> None:
    default = project.modelopt("plan", "--effect", "0.05", "--rate", "0.9")
    assert default.returncode == 0, default.stderr
    expected = plan(flips(0.9, 0.05), alpha=0.05, power=0.8, tolerance=0.02)
    assert _cases(default.stdout) == expected.cases == 685
    assert "alpha 0.05 (one comparison)" in default.stdout
    assert "outcomes independent given the rates" in default.stdout

    project.file("pyproject.toml", "[tool.modelopt.gates]\nalpha = 0.01\ntolerance = 0.03\n")
    strict = project.modelopt("plan", "--effect", "5%", "--rate", "90%", "--family", "20")
    assert strict.returncode == 0, strict.stderr
    expected = plan(flips(0.9, 0.05), alpha=family_alpha(0.01, 20), power=0.8, tolerance=0.03)
    assert _cases(strict.stdout) == expected.cases
    assert expected.cases > 685
    assert "alpha 0.01/20 = 0.0005 per comparison" in strict.stdout
    assert "beyond the tolerance 3.0%" in strict.stdout

    measured = project.modelopt(
        "plan", "--effect", "0.05", "--rate", "0.9", "--discordance", "0.1", "--tolerance", "0"
    )
    assert measured.returncode == 0, measured.stderr
    expected = plan(flips(0.9, 0.05, 0.1), alpha=0.01, power=0.8, tolerance=0.0)
    assert _cases(measured.stdout) == expected.cases
    assert "as measured (--discordance), 10.0% of cases flip" in measured.stdout


def test_an_impossible_plan_says_why(project: Project) -> None:
    for args, message in (
        (("--effect", "0.02", "--rate", "0.9"), "never called a regression"),
        (("--effect", "0.05", "--rate", "0.9", "--discordance", "0.02"), "does not fit"),
        (("--effect", "0.5", "--rate", "0.2"), "at most the pass rate"),
        (("--effect", "0.05", "--rate", "0.9", "--family", "0"), "at least one comparison"),
    ):
        done = project.modelopt("plan", *args)
        assert done.returncode == 2, (args, done.stdout)
        assert message in done.stderr
        assert done.stderr.count("\n") == 1  # one line, no traceback
    bad = project.modelopt("plan", "--effect", "five", "--rate", "0.9")
    assert bad.returncode == 2
    assert "'five' is not a number (0.05 or 5%)" in bad.stderr
