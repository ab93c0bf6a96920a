"""What the sdist and wheel carry, and what PyPI will show from them."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tarfile
import zipfile
from email.parser import HeaderParser
from typing import TYPE_CHECKING

import pytest

import pytest_modelopt
from tests.support.packaging import ROOT, claimed_pythons

if TYPE_CHECKING:
    from email.message import Message
    from pathlib import Path

REPOSITORY = "https://github.com/pytest-modelopt/pytest-modelopt"


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return HeaderParser().parsestr(archive.read(name).decode())


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_the_license_is_in_the_sdist_and_the_wheel(wheel: Path, sdist: Path) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(name).decode() == license_text
    with tarfile.open(sdist) as archive:
        (member,) = [m for m in archive.getmembers() if m.name.endswith("/LICENSE")]
        handle = archive.extractfile(member)
        assert handle is not None
        assert handle.read().decode() == license_text
    metadata = wheel_metadata(wheel)
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"


def test_the_wheel_is_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        assert "pytest_modelopt/py.typed" in archive.namelist()
    assert "Typing :: Typed" in wheel_metadata(wheel).get_all("Classifier", [])


def test_one_version_everywhere(wheel: Path, sdist: Path) -> None:
    """The version is written once (pytest_modelopt/__init__.py); the rest derive from it."""
    version = pytest_modelopt.__version__
    assert wheel_metadata(wheel)["Version"] == version
    assert wheel.name == f"pytest_modelopt-{version}-py3-none-any.whl"
    assert sdist.name == f"pytest_modelopt-{version}.tar.gz"
    assert importlib.metadata.version("pytest-modelopt") == version  # this (editable) install


def test_the_version_is_written_in_one_place() -> None:
    """Past records (a recorded run, measured benchmarks) and the changelog name versions
    on purpose; nothing else may repeat the current one."""
    literal = re.compile(rf"(?<![\w.]){re.escape(pytest_modelopt.__version__)}(?![\w.])")
    allowed = {"pytest_modelopt/__init__.py", "CHANGELOG.md", "docs/benchmarks.md"}
    found = [
        str(path.relative_to(ROOT))
        for path in tracked_files()
        if "/.modelopt/" not in str(path)
        and literal.search(path.read_text(errors="replace"))
        and str(path.relative_to(ROOT)) not in allowed
    ]
    assert found == []


def test_the_classifiers_match_requires_python(wheel: Path) -> None:
    metadata = wheel_metadata(wheel)
    assert metadata["Requires-Python"] == ">=3.10"
    assert claimed_pythons()[0] == "3.10"  # the oldest claimed is the oldest allowed
    assert claimed_pythons() == sorted(claimed_pythons(), key=lambda v: int(v.split(".")[1]))
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL", []))
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(url.startswith(REPOSITORY) for url in urls.values())


# [text](target), ![alt](target), [label]: target, src="target", href="target"
_LINK = re.compile(
    r"\]\(\s*<?([^)\s>]+)|^\s*\[[^\]]+\]:\s*(\S+)|(?:src|href)\s*=\s*[\"']([^\"']+)", re.M
)


def links_in(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code is not a link
    return [next(g for g in m.groups() if g) for m in _LINK.finditer(text)]


def test_the_readme_links_work_on_pypi() -> None:
    """PyPI shows README.md without the repository around it: every link is absolute, and
    a link into this repository names a file or folder that exists."""
    links = links_in((ROOT / "README.md").read_text())
    assert links, "the README's links were not found"
    relative = [link for link in links if not link.startswith("https://")]
    assert relative == []
    for link in links:
        own = re.match(rf"{re.escape(REPOSITORY)}/(?:blob|tree)/main/([^#?]+)", link)
        if own:
            assert (ROOT / own[1]).exists(), link


@pytest.mark.parametrize(
    "link", ["[a](docs/x.md)", "![b](images/y.png)", '<img src="y.png">', "[c]: ./z"]
)
def test_a_relative_link_is_found(link: str) -> None:
    """The check above sees each form of link (so its pass means something)."""
    assert [x for x in links_in(f"text\n{link}\n") if not x.startswith("https://")] != []


def test_the_action_is_named_by_its_real_repository() -> None:
    """The docs and examples name the repository and the tag the release workflow moves."""
    placeholders = [
        str(path.relative_to(ROOT))
        for path in tracked_files()
        if "OWNER" + "/pytest-modelopt" in path.read_text(errors="replace")
    ]
    assert placeholders == []
    documents = [ROOT / "README.md", ROOT / "docs" / "github-action.md"]
    uses = [
        name.rstrip("`")
        for path in [*documents, *sorted((ROOT / "examples" / "github").glob("*.yml"))]
        for name in re.findall(r"uses: (\S*pytest-modelopt@\S+)", path.read_text())
    ]
    assert uses
    assert set(uses) == {"pytest-modelopt/pytest-modelopt@v1"}, uses
