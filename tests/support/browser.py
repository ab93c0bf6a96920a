"""Headless Chromium for the HTML pages' tests: Debian's chromium driven by Playwright.

No ``playwright install``: the tests use the system's browser, and skip (saying why) when
it or Playwright is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-packages installs it)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (it is in the dev extra)")
    return path


def watch(page: Page, allowed: Path, problems: list[str] | None = None) -> list[str]:
    """The page's problems as they happen (appended to ``problems``): console errors and
    warnings, uncaught errors, and any request for something other than the page itself
    or a blob the page made (a download)."""
    problems = [] if problems is None else problems
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "request",
        lambda request: (
            problems.append(f"request: {request.url}")
            if request.url != allowed.as_uri() and not request.url.startswith("blob:")
            else None
        ),
    )
    return problems
