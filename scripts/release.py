#!/usr/bin/env python3
"""The release workflow's checks (.github/workflows/release.yml), standard library only.

    scripts/release.py check-tag TAG DIST      the tag is `v` + the version of the built
                                               sdist and wheel in DIST (exactly one each)
    scripts/release.py notes VERSION [--changelog FILE]
                                               print CHANGELOG.md's entry for VERSION: the
                                               GitHub release's notes

Each check exits 1 with one line saying what is wrong and what to do, so a release whose
tag, artifacts or changelog disagree stops before anything is published.
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# keep-a-changelog 1.1.0: "## [1.2.3] - 2026-01-31"
_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?P<rest>.*)$")
_DATED = re.compile(r"^ - \d{4}-\d{2}-\d{2}$")
_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]: \S+")


class ReleaseError(Exception):
    """A check failed: the message says what and what to do."""


def _version_in(metadata: bytes, where: str) -> str:
    version = HeaderParser().parsestr(metadata.decode("utf-8")).get("Version")
    if not version:
        raise ReleaseError(f"{where} has no Version field")
    return version


def built_versions(dist: Path) -> dict[str, str]:
    """The version each artifact in ``dist`` declares in its own metadata, by file name."""
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise ReleaseError(
            f"{dist} holds {len(wheels)} wheel(s) and {len(sdists)} sdist(s), not one of each: "
            "build once into an empty directory (python -m build)"
        )
    wheel, sdist = wheels[0], sdists[0]
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise ReleaseError(f"{wheel.name} holds {len(names)} METADATA files, not one")
        versions = {wheel.name: _version_in(archive.read(names[0]), f"{wheel.name}:{names[0]}")}
    with tarfile.open(sdist) as archive:
        infos = [m for m in archive.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name)]
        handle = archive.extractfile(infos[0]) if len(infos) == 1 else None
        if handle is None:
            raise ReleaseError(f"{sdist.name} holds no top-level PKG-INFO file")
        versions[sdist.name] = _version_in(handle.read(), f"{sdist.name}:{infos[0].name}")
    return versions


def check_tag(tag: str, dist: Path) -> str:
    """The version that ``tag`` releases, when it names exactly what was built."""
    versions = built_versions(dist)
    if len(set(versions.values())) != 1:
        raise ReleaseError(f"the artifacts disagree on the version: {versions}")
    version = next(iter(versions.values()))
    if tag != f"v{version}":
        raise ReleaseError(
            f"the tag {tag!r} does not name the package's version {version} "
            f"(pytest_modelopt/__init__.py): tag the release v{version}, or bump __version__"
        )
    return version


def notes(version: str, changelog: Path) -> str:
    """The body of ``changelog``'s entry for ``version``, without its heading."""
    lines = changelog.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines):
        match = _HEADING.match(line)
        if match and match["version"] == version:
            if not _DATED.match(match["rest"]):
                raise ReleaseError(
                    f"{changelog}:{number + 1}: the entry for {version} has no date: write "
                    f"'## [{version}] - YYYY-MM-DD' (the release day)"
                )
            start = number + 1
            break
    if start is None:
        raise ReleaseError(
            f"{changelog} has no entry for {version}: add '## [{version}] - YYYY-MM-DD' with "
            "what changed (move the [Unreleased] notes there) before tagging"
        )
    end = len(lines)
    for number in range(start, len(lines)):
        if lines[number].startswith("## ") or _LINK_DEFINITION.match(lines[number]):
            end = number
            break
    body = "\n".join(lines[start:end]).strip()
    if not body:
        raise ReleaseError(f"{changelog}: the entry for {version} is empty: say what changed")
    return body + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tag = commands.add_parser("check-tag", help="the tag names the built version")
    tag.add_argument("tag")
    tag.add_argument("dist", type=Path)
    entry = commands.add_parser("notes", help="print the changelog's entry for a version")
    entry.add_argument("version")
    entry.add_argument("--changelog", type=Path, default=ROOT / "CHANGELOG.md")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-tag":
            print(f"{args.tag} releases pytest-modelopt {check_tag(args.tag, args.dist)}")
        else:
            sys.stdout.write(notes(args.version, args.changelog))
    except (ReleaseError, OSError) as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
