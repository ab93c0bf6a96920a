"""At the end of every session: the documented blocks that no test runs, and why, and the
records of dated measurements (checked, not run again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.docs.blocks import not_run_blocks, record_blocks  # at the end: parses every page

    skipped = not_run_blocks()
    terminalreporter.section(f"docs: {len(skipped)} blocks not run")
    for planned in skipped:
        terminalreporter.line(f"{planned.block.where} ({planned.block.kind}): {planned.not_run}")
    records = record_blocks()
    terminalreporter.section(f"docs: {len(records)} records of dated measurements")
    for planned in records:
        terminalreporter.line(f"{planned.block.where}: {planned.record}")
