"""The built package, the Pythons it claims, and the offline wheelhouse its install tests use.

tests/packaging installs the built wheel into fresh venvs with ``--no-index``: the test run
never reaches the internet. What pip would fetch (the wheel's dependencies, with the
example's extras, and hatchling for a build from source) is fetched beforehand, once per
Python and per set of requirements, by ``scripts/package`` running::

    python -m tests.support.packaging prepare DIST

Each Python version the classifiers in pyproject.toml list gets its own wheelhouse (binary
wheels differ per version); one whose interpreter this machine lacks is left out, and its
tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dependency the package itself takes on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]

# The triage example's extras (the example tests/packaging replays from the built wheel;
# ./scripts/run-examples also installs `agents` for examples/agent).
EXTRAS = "xdist,similarity"

# What pip's build isolation needs to build the project from source (the Action's default).
BUILD_REQUIRES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"][
    "requires"
]


def claimed_pythons() -> list[str]:
    """The "X.Y" versions pyproject.toml's classifiers claim."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: "
    return [
        c[len(prefix) :]
        for c in project["classifiers"]
        if c.startswith(prefix) and re.fullmatch(r"3\.\d+", c[len(prefix) :])
    ]


def find_python(version: str) -> Path | None:
    """An interpreter of this "X.Y" version: on PATH, else a pyenv installation."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        try:  # a pyenv shim for a version that is not selected exits non-zero
            done = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return Path(candidate)
    return None


def wheelhouse(version: str) -> Path:
    root = os.environ.get("MODELOPT_WHEELHOUSE") or Path.home() / ".cache/pytest-modelopt"
    return Path(root) / "wheelhouse" / f"py{version}"


def requirements_key(wheel: Path) -> str:
    """What the wheelhouse must satisfy: the wheel's dependencies, the extras, the build."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = HeaderParser().parsestr(archive.read(name).decode())
    lines = [*sorted(metadata.get_all("Requires-Dist") or []), EXTRAS, *BUILD_REQUIRES]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def is_ready(wheel: Path, version: str) -> bool:
    stamp = wheelhouse(version) / ".requirements"
    return stamp.is_file() and stamp.read_text() == requirements_key(wheel)


def prepare(wheel: Path, version: str, python: Path) -> None:
    """Fill ``wheelhouse(version)`` with wheels of everything the install tests need."""
    if is_ready(wheel, version):
        return
    target = wheelhouse(version)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "wheel", "--quiet",
            "--disable-pip-version-check", "--wheel-dir", str(target),
            f"{wheel}[{EXTRAS}]", *BUILD_REQUIRES,
        ],
        check=True,
    )  # fmt: skip
    for built in target.glob("pytest_modelopt-*.whl"):  # the tests install theirs by path
        built.unlink()
    (target / ".requirements").write_text(requirements_key(wheel))


def clean_pip_env(**extra: str) -> dict[str, str]:
    """The environment for an offline pip: no PIP_* setting and no pip config file (this
    machine's adds find-links and indexes), so only what a command names is reached."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def fresh_venv(python: Path, path: Path, *, pip: bool = False) -> Path:
    """A new venv of ``python`` at ``path`` (with its bundled pip, or none); its python."""
    command = [str(python), "-m", "venv", str(path), *([] if pip else ["--without-pip"])]
    subprocess.run(command, check=True, env=clean_pip_env(), capture_output=True)
    return path / "bin" / "python"


def install_offline(python: Path, version: str, *requirements: str) -> None:
    """Install into ``python``'s venv from the wheelhouse alone (this venv's pip drives it)."""
    command = [
        sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
        "--no-compile", "--no-index", "--find-links", str(wheelhouse(version)), *requirements,
    ]  # fmt: skip
    done = subprocess.run(command, env=clean_pip_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "prepare":
        print("usage: python -m tests.support.packaging prepare DIST", file=sys.stderr)
        return 2
    (wheel,) = Path(argv[1]).glob("pytest_modelopt-*.whl")
    for version in claimed_pythons():
        python = find_python(version)
        if python is None:
            print(f"wheelhouse: no Python {version} here: its install test will be skipped")
            continue
        prepare(wheel, version, python)
        print(f"wheelhouse: Python {version} ({python}): {wheelhouse(version)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
