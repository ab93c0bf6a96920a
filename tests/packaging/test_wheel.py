"""The built wheel, installed into a fresh venv, runs the example evals as the source tree does.

Once per Python version the classifiers claim: a new venv of that interpreter, the wheel
installed with the example's extras from the offline wheelhouse (``--no-index``: no
internet, and no dev venv underneath — a dependency the wheel forgets to declare is
missing here), then the example project, copied out of the repository, replayed from its
recordings with that venv's pytest. Its results must be the ones ``./scripts/run-examples``
prints: the same command (``pytest --eval-record none`` in examples/triage) run with this
dev venv, whose pytest-modelopt is the source tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.packaging import (
    EXTRAS,
    ROOT,
    claimed_pythons,
    clean_pip_env,
    find_python,
    fresh_venv,
    install_offline,
    is_ready,
)

EXAMPLE = ROOT / "examples" / "triage"


def replay_example(python: Path, where: Path) -> subprocess.CompletedProcess[str]:
    """``pytest --eval-record none`` on a copy of the example, with ``python``'s pytest."""
    shutil.copytree(EXAMPLE, where, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    env = {k: v for k, v in clean_pip_env().items() if not k.startswith(("MODELOPT_", "OPENAI_"))}
    env.update(
        PATH=f"{python.parent}{os.pathsep}/usr/bin:/bin",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # nothing listens there: replay only
        COLUMNS="200",  # the whole table, in both runs
    )
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--eval-record", "none"]
    return subprocess.run(
        [*command, "--trace-config"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def results(output: str) -> list[str]:
    """The eval table, the graders' lines and pytest's counts, without the timings."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "modelopt: evals" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("run saved to"))
    counts = re.sub(r" in [0-9.]+s(econds)?", "", lines[-1])
    return [*lines[start:end], counts]


@pytest.fixture(scope="session")
def source_tree_results(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    done = replay_example(Path(sys.executable), tmp_path_factory.mktemp("source") / "triage")
    assert done.returncode == 0, done.stdout + done.stderr
    return results(done.stdout)


@pytest.mark.parametrize("version", claimed_pythons())
def test_the_wheel_runs_the_example_evals_in_a_fresh_venv(
    version: str, wheel: Path, source_tree_results: list[str], tmp_path: Path
) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine (PATH or pyenv)")
    if not is_ready(wheel, version):
        message = f"no wheelhouse for Python {version}: run scripts/package"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (./scripts/test does, before the tests)")
        pytest.skip(message)
    venv = tmp_path / "venv"
    fresh = fresh_venv(python, venv)
    install_offline(fresh, version, f"{wheel}[{EXTRAS}]")

    done = replay_example(fresh, tmp_path / "triage")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (plugin,) = re.findall(
        r"PLUGIN registered: <module 'pytest_modelopt\.plugin' from '(.*)'>", output
    )
    assert Path(plugin).is_relative_to(venv / "lib" / f"python{version}" / "site-packages")
    assert str(ROOT) not in output  # nothing came from the source tree
    assert results(done.stdout) == source_tree_results
