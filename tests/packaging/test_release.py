"""The release workflow: its checks (scripts/release.py, run as the workflow runs them) and
the workflow file's shape (trigger, jobs, least privilege, pinned actions)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import pytest_modelopt
from tests.support.packaging import ROOT

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = ROOT / "scripts" / "release.py"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_the_tag_must_name_the_built_version(dist: Path) -> None:
    version = pytest_modelopt.__version__
    ok = release("check-tag", f"v{version}", str(dist))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"v{version} releases pytest-modelopt {version}\n"
    wrong = release("check-tag", "v99.0.0", str(dist))
    assert wrong.returncode == 1
    assert f"'v99.0.0' does not name the package's version {version}" in wrong.stderr
    bare = release("check-tag", version, str(dist))  # without the v
    assert bare.returncode == 1


def test_the_tag_check_wants_one_sdist_and_one_wheel(dist: Path, tmp_path: Path) -> None:
    for artifact in dist.iterdir():
        shutil.copy(artifact, tmp_path / artifact.name)
        shutil.copy(artifact, tmp_path / artifact.name.replace("py3-none", "py2.py3-none"))
    done = release("check-tag", f"v{pytest_modelopt.__version__}", str(tmp_path))
    assert done.returncode == 1
    assert "2 wheel(s) and 1 sdist(s), not one of each" in done.stderr


CHANGELOG = """\
# Changelog

## [Unreleased]

- something not released yet

## [1.1.0] - 2027-02-01

### Fixed

- the second release's fix

## [1.0.0] - 2027-01-01

### Added

- the first release

[Unreleased]: https://example.invalid/compare/v1.1.0...HEAD
[1.1.0]: https://example.invalid/compare/v1.0.0...v1.1.0
[1.0.0]: https://example.invalid/releases/tag/v1.0.0
"""


@pytest.fixture
def changelog(tmp_path: Path) -> Path:
    path = tmp_path / "CHANGELOG.md"
    path.write_text(CHANGELOG)
    return path


def test_the_notes_are_that_versions_entry(changelog: Path) -> None:
    middle = release("notes", "1.1.0", "--changelog", str(changelog))
    assert middle.returncode == 0, middle.stderr
    assert middle.stdout == "### Fixed\n\n- the second release's fix\n"
    last = release("notes", "1.0.0", "--changelog", str(changelog))  # up to the link list
    assert last.stdout == "### Added\n\n- the first release\n"


UNDATED = CHANGELOG.replace("## [1.0.0] - 2027-01-01", "## [2.0.0]")
EMPTY = CHANGELOG.replace("## [1.1.0]", "## [2.0.0] - 2027-03-01\n\n## [1.1.0]")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (CHANGELOG, "has no entry for 2.0.0: add '## [2.0.0] - YYYY-MM-DD'"),
        (UNDATED, "the entry for 2.0.0 has no date"),
        (EMPTY, "the entry for 2.0.0 is empty"),
    ],
    ids=["missing", "undated", "empty"],
)
def test_a_missing_undated_or_empty_entry_stops_the_release(
    changelog: Path, text: str, error: str
) -> None:
    changelog.write_text(text)
    done = release("notes", "2.0.0", "--changelog", str(changelog))
    assert done.returncode == 1
    assert done.stdout == ""
    assert error in done.stderr


def test_this_version_has_its_changelog_entry() -> None:
    """A version bump without its CHANGELOG entry fails here, not at release time."""
    done = release("notes", pytest_modelopt.__version__)
    assert done.returncode == 0, done.stderr
    assert "### " in done.stdout


def load_workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return data


def test_the_workflow_runs_on_version_tags_with_least_privilege() -> None:
    workflow = load_workflow()
    assert workflow["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    writers = {name: job["permissions"] for name, job in jobs.items()}
    (publisher,) = [name for name, perms in writers.items() if "id-token" in perms]
    assert writers[publisher] == {"id-token": "write"}  # trusted publishing, nothing else
    assert jobs[publisher]["environment"]["name"] == "pypi"
    steps = jobs[publisher]["steps"]
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for s in steps)
    assert not any("run" in s for s in steps)  # the publishing job runs no script of ours
    for name, perms in writers.items():
        assert set(perms.values()) <= {"read", "write"}
        if name != publisher:
            assert "id-token" not in perms
    (builder,) = [n for n, j in jobs.items() if "needs" not in j]
    assert writers[builder] == {"contents": "read"}
    # publish only what was built and checked, and release only what was published
    assert jobs[publisher]["needs"] == builder
    releaser = next(n for n in jobs if n not in (builder, publisher))
    assert publisher in jobs[releaser]["needs"]
    assert writers[releaser] == {"contents": "write"}


def test_the_workflow_builds_once_checks_and_releases_the_changelog_entry() -> None:
    jobs = load_workflow()["jobs"]
    scripts = {
        name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()
    }
    built = [name for name, script in scripts.items() if "python -m build" in script]
    assert len(built) == 1
    for check in ("twine check --strict dist/*", "scripts/release.py check-tag",
                  "scripts/release.py notes"):  # fmt: skip
        assert check in scripts[built[0]], check
    released = "\n".join(scripts.values())
    assert "gh release create" in released
    assert "--notes-file release-notes.md" in released
    assert re.search(r"git/refs/tags/\$MAJOR", released)  # the action's major tag moves
    assert load_workflow()["env"]["MAJOR"] == "v1"


def test_every_action_is_pinned_and_no_script_interpolates() -> None:
    for name, job in load_workflow()["jobs"].items():
        assert job.get("steps"), name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            assert "${{" not in step.get("run", ""), step.get("name")
