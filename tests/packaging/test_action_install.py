"""action.yml's install step, run for real: the `version` input and the default.

test_action.py stands the install step in for the venv running the tests; here the step's
own script runs in bash, as a runner runs it, with a fresh venv's Python first on PATH and
pip pointed by its own environment variables (PIP_NO_INDEX, PIP_FIND_LINKS) at a local
directory standing in for PyPI: the built wheel and its dependencies (tests/packaging's
offline wheelhouse). Nothing reaches the internet.

- ``version: X`` installs ``pytest-modelopt[xdist]==X`` from that index;
- a release that is not there (not published yet) fails the step with an ``::error``
  naming the input and saying what to do; so does a value that is not a release number,
  which never reaches pip;
- no ``version`` installs the action's own source (a copy of the checked-out action):
  built by pip, offline, from the files `uses:` checked out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_modelopt
from tests.github.test_action import ACTION, interpolate, workflow_commands
from tests.support.packaging import ROOT, clean_pip_env, fresh_venv, is_ready, wheelhouse

VERSION = "{}.{}".format(*sys.version_info[:2])
STEP = next(step for step in ACTION["runs"]["steps"] if step.get("id") == "install")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> list[Path]:
    """The stand-in for PyPI: the built wheel, and the wheelhouse for its dependencies."""
    if not is_ready(wheel, VERSION):
        message = f"no wheelhouse for Python {VERSION}: run scripts/package"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (./scripts/test does, before the tests)")
        pytest.skip(message)
    published = tmp_path_factory.mktemp("published")
    shutil.copy(wheel, published)
    return [published, wheelhouse(VERSION)]


def run_install(venv: Path, inputs: dict[str, str], index: list[Path], action: Path) -> str:
    """The step's script with its `env:` evaluated from action.yml; its log."""
    context = {
        "github": {"action_path": str(action)},
        "inputs": {"install": "", "version": "", **inputs},
    }
    env = clean_pip_env(
        PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=" ".join(str(p) for p in index),
    )
    env.update({k: interpolate(str(v), context) for k, v in STEP["env"].items()})
    script = venv.parent / "install.sh"
    script.write_text(STEP["run"])
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=venv.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}"


def installed(venv: Path) -> dict[str, str]:
    """Where the venv's pytest_modelopt comes from: version, file, and pip's direct URL."""
    probe = (
        "import importlib.metadata as m, json, pytest_modelopt as p;"
        "d = m.distribution('pytest-modelopt');"
        "print(json.dumps({'version': p.__version__, 'file': p.__file__,"
        " 'direct_url': d.read_text('direct_url.json') or ''}))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=venv.parent,
        env=clean_pip_env(),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def errors(log: str) -> list[str]:
    return [c for c in workflow_commands(log) if c.startswith("::error")]


def test_version_installs_that_release_from_the_index_and_refuses_others(
    tmp_path: Path, index: list[Path]
) -> None:
    venv = tmp_path / "venv"
    fresh_venv(Path(sys.executable), venv, pip=True)

    for bad in ("1.0; touch pwned", ">=0", "latest", "1.0 --index-url http://x"):
        log = run_install(venv, {"version": bad}, index, ROOT)
        assert log.startswith("exit 1"), log
        (error,) = errors(log)
        assert "The input `version` must be a release number" in error
        assert "Looking in links" not in log  # pip never ran
    assert not (tmp_path / "pwned").exists()

    log = run_install(venv, {"version": "99.0.0"}, index, ROOT)  # not published
    assert log.startswith("exit 1"), log
    (error,) = errors(log)
    assert "pytest-modelopt==99.0.0 could not be installed from PyPI (the input `version`)" in error
    assert "Leave `version` empty to install the action's own source" in error
    assert "No matching distribution found for pytest-modelopt" in log  # pip's own reason
    documented = (ROOT / "docs" / "github-action.md").read_text()
    assert error.replace("99.0.0", "1.2.3") in documented.splitlines()  # the docs quote it

    log = run_install(venv, {"version": pytest_modelopt.__version__}, index, ROOT)
    assert log.startswith("exit 0"), log
    assert errors(log) == []
    found = installed(venv)
    assert found["version"] == pytest_modelopt.__version__
    assert str(venv) in found["file"]
    assert found["direct_url"] == ""  # from the index by name, not from a path or a URL
    assert re.search(r"pytest[-_]xdist", log)  # the [xdist] extra came with it


def test_no_version_installs_the_actions_own_source(tmp_path: Path, index: list[Path]) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    action = tmp_path / "action"  # what `uses:` checks out: the repository at the tag
    for name in filter(None, listed.split("\0")):
        # all but the bulky folders the install does not read (examples/github it does: the
        # wheel ships those workflows for `modelopt init --github`)
        bulky = ("examples/", "tests/", "benchmarks/")
        if (ROOT / name).is_file() and (
            not name.startswith(bulky) or name.startswith("examples/github/")
        ):
            (action / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, action / name)
    venv = tmp_path / "venv"
    fresh_venv(Path(sys.executable), venv, pip=True)

    log = run_install(venv, {}, index, action)

    assert log.startswith("exit 0"), log
    found = installed(venv)
    assert found["version"] == pytest_modelopt.__version__
    assert str(venv) in found["file"]
    assert json.loads(found["direct_url"])["url"] == action.as_uri()
