"""action.yml under nektos/act, a real implementation of the Actions runner (offline).

The harness in test_action.py evaluates action.yml itself; this runs it where the
runner's own semantics apply: composite steps, expressions, `::stop-commands::`, the real
setup-python, actions/cache and upload-artifact at their pinned SHAs, act's artifact and
cache servers. scripts/act-scenarios does the work and checks the outcomes; this test
runs it when act and the pinned actions are set up (`scripts/act-scenarios --setup`),
and is skipped with the reason (and the command that fixes it) when they are not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "act_scenarios.py"
NOT_READY = 3


def _not_ready() -> str:
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check.returncode == 0:
        return ""
    assert check.returncode == NOT_READY, check.stdout + check.stderr
    return check.stdout.strip() or "act-scenarios --check said no"


def test_the_action_under_act_push_pr_update_failing_gate_and_fork() -> None:
    reason = _not_ready()
    if reason:
        pytest.skip(f"act is not set up: {reason}")
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "5 of 5 scenarios passed" in report
    for scenario in (
        "push: saves the baseline",
        "PR: creates the comment",
        "PR: updates the comment",
        "PR: the gate fails",
        "fork PR: no secrets",
    ):
        assert f"ok  {scenario}" in report, report
    assert "✗" not in report
