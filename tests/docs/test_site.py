"""The documentation site builds with ``mkdocs build --strict``, offline, and links hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    command = [str(MKDOCS), "build", "--strict", "--site-dir", str(site)]
    # in a network namespace of its own when we may make one: the build must fetch nothing
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode
        == 0
    ):
        command = ["unshare", "-n", *command]
    return subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )


def _copy_of_the_sources(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("docs", "examples"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns(".modelopt"))
    (copy / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "mkdocs_hooks.py", copy / "scripts")
    return copy


def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    done = _build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Eval-driven development for LLM applications" in home  # the README
    # a README link into docs/ is a link between pages; one to a file outside docs/ goes
    # to the file on GitHub
    assert 'href="getting-started/"' in home
    assert (
        'href="https://github.com/pytest-modelopt/pytest-modelopt/tree/main/examples/triage"'
        in home
    )
    # no page loads a script, a stylesheet, a font or an image from another host
    outside = re.compile(r'<(?:script|img|link)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]+"[^>]*>')
    for page in (tmp_path / "site").rglob("*.html"):
        tags = [
            t
            for t in outside.findall(page.read_text())
            if "<link" not in t or "stylesheet" in t or "preconnect" in t
        ]
        assert not tags, (page, tags)


@pytest.mark.parametrize(
    ("page", "link"),
    [
        ("docs/graders.md", "[gone](no-such-page.md)"),
        ("docs/graders.md", "[gone](reference.md#no-such-heading)"),
        ("README.md", "[gone](docs/no-such-page.md)"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, page: str, link: str) -> None:
    copy = _copy_of_the_sources(tmp_path)
    with (copy / page).open("a") as file:
        file.write(f"\n\nSee {link}.\n")
    done = _build(copy, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such" in done.stdout + done.stderr
